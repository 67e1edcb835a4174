#!/usr/bin/env python3
"""Drives Transmission's web UI, served by a ccbt-uring daemon, in headless Chromium.

    webui_browser.py BASE_URL LISTED_NAME TORRENT_TO_ADD ADDED_NAME SCREENSHOT

Loads BASE_URL/transmission/web/, waits until LISTED_NAME is in the torrent list, adds
TORRENT_TO_ADD through the page's Open dialog and waits until ADDED_NAME is listed,
removes LISTED_NAME through the toolbar's Remove button and its confirm dialog and waits
until the list no longer shows it, then saves a screenshot. Prints one JSON line with
the names listed at the end. Every wait has a deadline; a failure exits 1 with a reason
(and a screenshot of the page as it was).
"""

import json
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WAIT_S = 60


def names(driver):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#torrent_list .torrent_name")]


def wait(what, predicate, driver, screenshot):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # the page is being redrawn; look again
            pass
        time.sleep(0.25)
    driver.save_screenshot(screenshot)
    raise SystemExit(f"timed out after {WAIT_S} s waiting for {what}; listed: {names(driver)}")


def main():
    base, listed, torrent, added, screenshot = sys.argv[1:6]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    # The Debian driver, named: selenium must not look for (or download) one.
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        driver.get(base + "/transmission/web/")
        wait(f"{listed} to be listed", lambda: listed in names(driver), driver, screenshot)

        driver.find_element(By.ID, "toolbar-open").click()
        wait("the upload dialog", lambda: driver.find_element(By.ID, "upload_container").is_displayed(),
             driver, screenshot)
        driver.find_element(By.ID, "torrent_upload_file").send_keys(torrent)
        driver.find_element(By.ID, "upload_confirm_button").click()
        wait(f"{added} to be listed", lambda: added in names(driver), driver, screenshot)

        row = [e for e in driver.find_elements(By.CSS_SELECTOR, "#torrent_list li.torrent")
               if e.find_element(By.CSS_SELECTOR, ".torrent_name").text == listed][0]
        row.find_element(By.CSS_SELECTOR, ".torrent_name").click()
        wait(f"{listed} to be selected", lambda: "selected" in row.get_attribute("class"),
             driver, screenshot)
        driver.find_element(By.ID, "toolbar-remove").click()
        wait("the remove dialog", lambda: driver.find_element(By.ID, "dialog_container").is_displayed(),
             driver, screenshot)
        driver.find_element(By.ID, "dialog_confirm_button").click()
        wait(f"{listed} to leave the list", lambda: listed not in names(driver), driver, screenshot)

        driver.save_screenshot(screenshot)
        print(json.dumps({"listed": names(driver)}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
