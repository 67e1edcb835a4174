"""Drives ccbt-uring's qBittorrent WebAPI with the `qbittorrent-api` client (PyPI), the way
Sonarr does: log in, check the version, read the preferences, make a category, add a
torrent with that category and a save path, find it by `torrents/properties` within 1 s,
add a second by URL (served by a local HTTP server, as an indexer link), list by category, read its files, set share limits, tag it, move it to the top of the
queue, stop and start it, follow `sync/maindata` increments, and delete it with its files.

    qbt_sonarr.py URL USER PASSWORD SHOW.torrent SHOW_SAVE_DIR OTHER.torrent OTHER_SAVE_DIR

SHOW_SAVE_DIR and OTHER_SAVE_DIR hold the torrents' data already, so both become seeds
after their check. Prints one `OK <step> ...` line per step that passed; any failure
raises (a traceback and a non-zero exit). Every wait has a deadline.
"""

import functools
import http.server
import os
import sys
import threading
import time

import qbittorrentapi


def ok(step, detail=""):
    print(f"OK {step} {detail}".rstrip(), flush=True)


def wait_for(what, check, limit_s=30.0, every_s=0.1):
    """Polls check() until it returns something truthy; fails after limit_s."""
    deadline = time.monotonic() + limit_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)


def serve_directory(directory):
    """An HTTP server on 127.0.0.1 (a port the kernel picks) serving `directory`, as an
    indexer's download link does; returns its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def info_hash_of(client, before, name):
    for t in client.torrents_info():
        if t["name"] == name and t["hash"] not in before:
            return t["hash"]
    return None


def more_endpoints(client, show, other, show_dir, wait_for, seeding):
    """The rest of the endpoints the *arr apps, Prowlarr and web UIs use."""
    client.app_set_preferences(prefs={
        "max_ratio_enabled": True, "max_ratio": 3.0,
        "max_seeding_time_enabled": True, "max_seeding_time": 120,
        "ccbt_test_unsupported": 1,
    })
    prefs = client.app_preferences()
    assert (prefs["max_ratio_enabled"], prefs["max_ratio"]) == (True, 3.0), prefs["max_ratio"]
    assert (prefs["max_seeding_time_enabled"], prefs["max_seeding_time"]) == (True, 120)
    t = client.torrents_info(torrent_hashes=other)[0]
    assert t["ratio_limit"] == -2 and t["max_ratio"] == 3.0, (t["ratio_limit"], t["max_ratio"])
    assert t["max_seeding_time"] == 120, t["max_seeding_time"]
    ok("set-preferences")

    trackers = client.torrents_trackers(torrent_hash=show)
    assert [x["url"] for x in trackers[:3]] == ["** [DHT] **", "** [PeX] **", "** [LSD] **"]
    states = client.torrents_piece_states(torrent_hash=show)
    pieces = client.torrents_properties(torrent_hash=show)["pieces_num"]
    assert len(states) == pieces and set(states) == {2}, (len(states), pieces, set(states))
    ok("trackers-and-pieces", f"pieces={pieces}")

    client.torrents_file_priority(torrent_hash=show, file_ids=[1], priority=0)
    assert [f["priority"] for f in client.torrents_files(torrent_hash=show)] == [1, 0, 1]
    client.torrents_file_priority(torrent_hash=show, file_ids=1, priority=1)
    assert [f["priority"] for f in client.torrents_files(torrent_hash=show)] == [1, 1, 1]
    try:
        client.torrents_file_priority(torrent_hash=show, file_ids=1, priority=3)
        raise AssertionError("priority 3 was accepted")
    except qbittorrentapi.InvalidRequest400Error:
        pass
    ok("file-priority")

    client.torrents_set_upload_limit(limit=123456, torrent_hashes=other)
    client.torrents_set_download_limit(limit=654321, torrent_hashes=other)
    assert client.torrents_upload_limit(torrent_hashes=other)[other] == 123456
    assert client.torrents_download_limit(torrent_hashes=other)[other] == 654321
    t = client.torrents_info(torrent_hashes=other)[0]
    assert (t["up_limit"], t["dl_limit"]) == (123456, 654321), t
    client.torrents_set_upload_limit(limit=0, torrent_hashes=other)
    assert client.torrents_info(torrent_hashes=other)[0]["up_limit"] == -1
    ok("rate-limits")

    client.torrents_edit_category(name="tv", save_path=os.path.join(show_dir, "later"))
    assert client.torrents_categories()["tv"]["savePath"] == os.path.join(show_dir, "later")
    client.torrents_edit_category(name="tv", save_path=show_dir)
    client.torrents_create_category(name="scratch")
    try:
        client.torrents_create_category(name="scratch")
        raise AssertionError("a second scratch category was created")
    except qbittorrentapi.Conflict409Error:
        pass
    client.torrents_set_category(category="scratch", torrent_hashes=other)
    assert client.torrents_info(torrent_hashes=other)[0]["category"] == "scratch"
    client.torrents_remove_categories(categories="scratch")
    assert "scratch" not in client.torrents_categories()
    assert client.torrents_info(torrent_hashes=other)[0]["category"] == ""
    try:
        client.torrents_set_category(category="nope", torrent_hashes=other)
        raise AssertionError("an unknown category was set")
    except qbittorrentapi.Conflict409Error:
        pass
    client.torrents_set_category(category="movies", torrent_hashes=other)
    ok("categories-edit")

    client.torrents_create_tags(tags=["a", "b"])
    assert {"a", "b"} <= set(client.torrents_tags())
    client.torrents_add_tags(tags=["a", "b"], torrent_hashes=other)
    assert client.torrents_info(torrent_hashes=other)[0]["tags"] == "a, b"
    client.torrents_remove_tags(tags="a", torrent_hashes=other)
    assert client.torrents_info(torrent_hashes=other)[0]["tags"] == "b"
    client.torrents_delete_tags(tags=["a", "b"])
    assert not {"a", "b"} & set(client.torrents_tags())
    assert client.torrents_info(torrent_hashes=other)[0]["tags"] == ""
    ok("tags-edit")

    client.torrents_bottom_priority(torrent_hashes=show)
    client.torrents_increase_priority(torrent_hashes=show)
    client.torrents_decrease_priority(torrent_hashes=show)
    client.torrents_set_force_start(enable=True, torrent_hashes=other)
    client.torrents_toggle_sequential_download(torrent_hashes=other)
    assert client.torrents_info(torrent_hashes=other)[0]["seq_dl"] is True
    client.torrents_toggle_sequential_download(torrent_hashes=other)
    assert client.torrents_info(torrent_hashes=other)[0]["seq_dl"] is False
    ok("queue-force-sequential")

    # Renames, as qBittorrent's web UI sends them: a file into a new folder, a folder,
    # and the refusals (a taken path, a missing one, one leaving the torrent).
    name = client.torrents_info(torrent_hashes=show)[0]["name"]
    client.torrents_rename_file(torrent_hash=show, old_path=f"{name}/episode.nfo",
                                new_path=f"{name}/Extras/episode.nfo")
    client.torrents_rename_folder(torrent_hash=show, old_path=f"{name}/Subs",
                                  new_path=f"{name}/Subtitles")
    renamed = sorted([f"{name}/episode.mkv", f"{name}/Extras/episode.nfo",
                      f"{name}/Subtitles/en.srt"])
    listed = sorted(f["name"] for f in client.torrents_files(torrent_hash=show))
    assert listed == renamed, listed
    for path in renamed:
        assert os.path.isfile(os.path.join(show_dir, path)), path
    for gone in (f"{name}/episode.nfo", f"{name}/Subs"):
        assert not os.path.exists(os.path.join(show_dir, gone)), gone
    for old, new in ((f"{name}/episode.mkv", f"{name}/Extras/episode.nfo"),
                     (f"{name}/nothing.mkv", f"{name}/x.mkv"),
                     (f"{name}/episode.mkv", "../escaped.mkv")):
        try:
            client.torrents_rename_file(torrent_hash=show, old_path=old, new_path=new)
            raise AssertionError(f"renaming {old} to {new} was accepted")
        except qbittorrentapi.Conflict409Error:
            pass
    try:
        client.torrents_rename_folder(torrent_hash=show, old_path=f"{name}/episode.mkv",
                                      new_path=f"{name}/folder")
        raise AssertionError("a file was renamed as a folder")
    except qbittorrentapi.Conflict409Error:
        pass
    assert not os.path.exists(os.path.join(show_dir, "..", "escaped.mkv"))
    wait_for("the show seeding again after its renames", lambda: seeding(show))
    ok("renames")

    client.torrents_reannounce(torrent_hashes=other)
    client.torrents_recheck(torrent_hashes=other)
    wait_for("the other torrent seeding after its recheck", lambda: seeding(other))
    info = client.transfer_info()
    assert info["connection_status"] == "connected" and "dl_info_speed" in info, info
    ok("recheck-and-transfer")


def main():
    url, user, password, show_torrent, show_dir, other_torrent, other_dir = sys.argv[1:8]
    client = qbittorrentapi.Client(
        host=url,
        username=user,
        password=password,
        REQUESTS_ARGS={"timeout": (10, 30)},
        RAISE_NOTIMPLEMENTEDERROR_FOR_UNIMPLEMENTED_API_ENDPOINTS=True,
    )
    client.auth_log_in()
    assert client.is_logged_in, "no SID after login"
    ok("login")

    assert client.app.version == "v5.1.4", client.app.version
    assert client.app.web_api_version == "2.11.4", client.app.web_api_version
    ok("version", f"{client.app.version} {client.app.web_api_version}")

    prefs = client.app_preferences()
    for key in (
        "save_path",
        "max_ratio_enabled",
        "max_ratio",
        "max_seeding_time_enabled",
        "max_seeding_time",
        "max_inactive_seeding_time_enabled",
        "max_inactive_seeding_time",
        "max_ratio_act",
        "queueing_enabled",
        "dht",
    ):
        assert key in prefs, f"preferences lack {key}"
    assert prefs["queueing_enabled"] is True, prefs["queueing_enabled"]
    ok("preferences", prefs["save_path"])

    client.torrents_create_category(name="tv", save_path=show_dir)
    categories = client.torrents_categories()
    assert categories["tv"]["savePath"] == show_dir, categories
    ok("category", "tv")

    before = {t["hash"] for t in client.torrents_info()}
    with open(show_torrent, "rb") as f:
        answer = client.torrents_add(
            torrent_files={"show.torrent": f.read()},
            category="tv",
            save_path=show_dir,
            is_stopped=False,
            is_sequential_download=True,
            ratio_limit=1.5,
            seeding_time_limit=60,
            is_skip_checking=True,
        )
    assert answer == "Ok.", answer
    added_at = time.monotonic()
    show_name = os.path.basename(show_torrent)[: -len(".torrent")]
    show = wait_for("the added torrent in torrents/info",
                    lambda: info_hash_of(client, before, show_name), limit_s=1.0)
    # Sonarr's WaitForTorrent: torrents/properties up to 10 x 100 ms.
    props = None
    for _ in range(10):
        try:
            props = client.torrents_properties(torrent_hash=show)
            break
        except qbittorrentapi.NotFound404Error:
            time.sleep(0.1)
    elapsed = time.monotonic() - added_at
    assert props is not None, "torrents/properties did not find the torrent within 1 s"
    assert props["save_path"] == show_dir, props["save_path"]
    assert elapsed < 1.0, elapsed
    ok("properties-after-add", f"{elapsed:.3f}s")
    t = client.torrents_info(torrent_hashes=show)[0]
    assert t["seq_dl"] is True, t["seq_dl"]
    assert (t["ratio_limit"], t["seeding_time_limit"]) == (1.5, 60), t
    ok("add-options")

    # The second comes by URL, as Prowlarr hands over an indexer's link (4.x `paused`).
    base = serve_directory(os.path.dirname(other_torrent))
    link = f"{base}/{os.path.basename(other_torrent)}"
    assert client.torrents_add(
        urls=link, save_path=other_dir, category="movies", is_paused=False
    ) == "Ok."
    other_name = os.path.basename(other_torrent)[: -len(".torrent")]
    other = wait_for("the second torrent", lambda: info_hash_of(client, before | {show}, other_name))
    assert "movies" in client.torrents_categories(), "add did not create its category"
    ok("second-add-by-url", other)

    listed = client.torrents_info(category="tv")
    assert [t["hash"] for t in listed] == [show], listed
    t = listed[0]
    assert t["category"] == "tv" and t["save_path"] == show_dir, t
    assert t["content_path"] == os.path.join(show_dir, show_name), t["content_path"]
    ok("list-by-category", t["state"])

    def seeding(h):
        t = client.torrents_info(torrent_hashes=h)[0]
        return t if t["state"] in ("stalledUP", "uploading") and t["progress"] == 1 else None

    wait_for("both torrents seeding", lambda: seeding(show) and seeding(other))
    files = client.torrents_files(torrent_hash=show)
    names = sorted(f["name"] for f in files)
    on_disk = sorted(
        os.path.relpath(os.path.join(root, name), show_dir)
        for root, _, filenames in os.walk(os.path.join(show_dir, show_name))
        for name in filenames
    )
    assert names == on_disk, (names, on_disk)
    assert all(f["name"].split("/")[0] == show_name for f in files), names
    assert all(f["progress"] == 1 and f["priority"] == 1 for f in files), files
    ok("files", ",".join(names))

    client.torrents_set_share_limits(
        ratio_limit=2.5, seeding_time_limit=90, inactive_seeding_time_limit=-1,
        torrent_hashes=show,
    )
    t = client.torrents_info(torrent_hashes=show)[0]
    assert t["ratio_limit"] == 2.5, t["ratio_limit"]
    assert t["seeding_time_limit"] == 90, t["seeding_time_limit"]
    assert t["inactive_seeding_time_limit"] == -1, t["inactive_seeding_time_limit"]
    assert t["max_ratio"] == 2.5 and t["max_seeding_time"] == 90, t
    ok("share-limits")

    client.torrents_add_tags(tags="sonarr", torrent_hashes=show)
    assert client.torrents_info(torrent_hashes=show)[0]["tags"] == "sonarr"
    assert "sonarr" in client.torrents_tags()
    assert [t["hash"] for t in client.torrents_info(tag="sonarr")] == [show]
    ok("tags")

    client.torrents_top_priority(torrent_hashes=other)
    client.torrents_top_priority(torrent_hashes=show)
    ok("top-priority")

    more_endpoints(client, show, other, show_dir, wait_for, seeding)

    # sync/maindata: a full update, then increments once nothing moves.
    full = client.sync_maindata(rid=0)
    assert full["full_update"] is True, full.keys()
    assert {show, other} <= set(full["torrents"]), list(full["torrents"])
    assert "tv" in full["categories"] and "sonarr" in full["tags"], (full["categories"], full["tags"])
    rid = full["rid"]

    def quiet():
        nonlocal rid
        step = client.sync_maindata(rid=rid)
        rid = step["rid"]
        return not step.get("torrents") and step.get("full_update") is False

    wait_for("an increment with no changes", quiet, limit_s=20.0, every_s=0.5)
    ok("sync-quiet", f"rid={rid}")

    client.torrents_stop(torrent_hashes=show)
    step = client.sync_maindata(rid=rid)
    assert step["full_update"] is False, step
    changed = step.get("torrents", {})
    assert show in changed, f"the stopped torrent is not in the increment: {step}"
    assert changed[show]["state"] == "stoppedUP", changed[show]["state"]
    assert other not in changed, f"an unchanged torrent is in the increment: {list(changed)}"
    rid = step["rid"]
    ok("sync-increment", f"rid={rid} changed={len(changed)}")

    client.torrents_create_category(name="late")
    client.torrents_create_tags(tags="late")
    step = client.sync_maindata(rid=rid)
    assert list(step.get("categories", {})) == ["late"], step.get("categories")
    assert step.get("tags") == ["late"], step.get("tags")
    rid = step["rid"]
    client.torrents_remove_categories(categories="late")
    client.torrents_delete_tags(tags="late")
    step = client.sync_maindata(rid=rid)
    assert step.get("categories_removed") == ["late"], step
    assert step.get("tags_removed") == ["late"], step
    rid = step["rid"]
    ok("sync-labels")

    t = client.torrents_info(torrent_hashes=show)[0]
    assert t["state"] == "stoppedUP", t["state"]
    assert [x["hash"] for x in client.torrents_info(status_filter="stopped")] == [show]
    ok("stop")
    client.torrents_start(torrent_hashes=show)
    wait_for("the torrent seeding again", lambda: seeding(show))
    ok("start")

    # Prowlarr's 4.x names still work.
    client._post(_name="torrents", _method="pause", data={"hashes": other})
    assert client.torrents_info(torrent_hashes=other)[0]["state"] == "stoppedUP"
    client._post(_name="torrents", _method="resume", data={"hashes": other})
    wait_for("the other torrent seeding again", lambda: seeding(other))
    ok("pause-resume-4x")

    content = os.path.join(show_dir, show_name)
    assert os.path.isdir(content), content
    client.torrents_delete(delete_files=True, torrent_hashes=show)
    assert show not in {t["hash"] for t in client.torrents_info()}
    wait_for("the data deleted", lambda: not os.path.exists(content), limit_s=10.0)
    step = client.sync_maindata(rid=rid)
    assert show in step.get("torrents_removed", []), step
    ok("delete-with-files")

    client.auth_log_out()
    ok("logout")


if __name__ == "__main__":
    main()
