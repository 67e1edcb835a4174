#!/usr/bin/python3
"""A DHT bootstrap node that counts what it is asked: answers every KRPC query with its id
and no nodes (so it enters the asker's routing table), and prints one line per query:
`query METHOD INFO_HASH_HEX` (the hash empty for ping and find_node).

    dht_counter.py PORT     listens on 127.0.0.1:PORT for at most 120 s
"""

import socket
import sys
import time


def decode(data, i=0):
    """One bencoded value at data[i:]: (value, next index). Raises on bad input."""
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c == b"l":
        i, out = i + 1, []
        while data[i:i + 1] != b"e":
            v, i = decode(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i, out = i + 1, {}
        while data[i:i + 1] != b"e":
            k, i = decode(data, i)
            v, i = decode(data, i)
            out[k] = v
        return out, i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n], colon + 1 + n


def bstr(b):
    return b"%d:%s" % (len(b), b)


def main():
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.2)
    our_id = b"\x11" * 20
    print("dht_counter: listening", flush=True)
    start = time.monotonic()
    while time.monotonic() < start + 120:
        try:
            data, addr = sock.recvfrom(4096)
        except socket.timeout:
            continue
        try:
            msg, _ = decode(data)
        except (ValueError, IndexError):
            print("garbage", flush=True)
            continue
        if msg.get(b"y") != b"q":
            continue
        method = msg.get(b"q", b"").decode(errors="replace")
        args = msg.get(b"a", {})
        target = args.get(b"info_hash", b"").hex()
        print("query %s %s" % (method, target), flush=True)
        reply = (b"d1:rd2:id" + bstr(our_id) + b"5:nodes0:5:token" + bstr(b"tok") + b"e1:t"
                 + bstr(msg.get(b"t", b"")) + b"1:y1:re")
        sock.sendto(reply, addr)


if __name__ == "__main__":
    main()
