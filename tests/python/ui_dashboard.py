"""Drives veto's operator dashboard (/ui) in a real headless Chromium.

Usage: ui_dashboard.py BASE_URL ADMIN_TOKEN --regions R1,R2,R3 --latency-from R2,R3

BASE_URL is a node of a three-node cluster whose regions are --regions (this
node's first); --latency-from names the regions whose records already reached
this node. Asserts that the page loads without a console error, shows the
cluster connected, reports propagation latency, revokes through its form,
finds the revocation in the audit trail by key, scope and time, and, when the
node serves receipts, shows the receipt enforced in every region. Saves a
screenshot to $VETO_UI_SCREENSHOT when it is set. Then revokes, through the
API, a record whose reason and key are markup, and asserts that the page shows
them as text: no element made from them, no script of theirs run, and still no
console error. Exits non-zero with the reason on any failure.

The browser and its driver are $VETO_CHROMIUM and $VETO_CHROMEDRIVER (default
/usr/bin/chromium and /usr/bin/chromedriver).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT = 30


HOSTILE_REASON = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def http_post(url, body, token):
    """(status, parsed JSON or None) of POST url with a JSON body."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def http_get(url, token=None):
    """(status, parsed JSON or None) of GET url."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def browser(user_data_dir):
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("VETO_CHROMIUM", "/usr/bin/chromium")
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={user_data_dir}",
    ]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("VETO_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=opts)


def wait_for(driver, what, cond):
    """Waits until cond(driver) is truthy; fails naming `what`. The page
    re-renders its tables every 2 s, so an element may go stale meanwhile."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.2, ignored_exceptions=ignored).until(cond)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for: {what}") from None


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def attrs(driver, selector, name):
    """The attribute `name` of every element matching `selector`, read at once."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]));",
        selector, name)


def text_of(driver, selector):
    """The text of the first element matching `selector`, or None."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", selector)


def click_row(driver, rid):
    """Clicks the audit row of record `rid` (re-found if a refresh replaced it)."""
    def clicked(d):
        d.find_element(By.CSS_SELECTOR, f'#audit tbody tr[data-id="{rid}"]').click()
        return True
    wait_for(driver, f"a click on the row of {rid}", clicked)


def fill(driver, selector, value):
    el = driver.find_element(By.CSS_SELECTOR, selector)
    el.clear()
    if value:
        el.send_keys(value)


def set_datetime(driver, selector, unix_secs):
    """Sets a datetime-local input (read by the page as UTC) through its value."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix_secs))
    driver.execute_script("arguments[0].value = arguments[1];",
                          driver.find_element(By.CSS_SELECTOR, selector), text)


def audit_ids(driver):
    return attrs(driver, "#audit tbody tr", "data-id")


def search(driver, expect, what, **fields):
    """Fills the audit filters, searches, and waits until the table shows the
    answer to exactly that query and `expect(ids)` holds."""
    driver.find_element(By.ID, "audit-clear").click()
    for name, value in fields.items():
        if name == "scope":
            Select(driver.find_element(By.ID, "audit-scope")).select_by_value(value)
        elif name in ("since", "until"):
            set_datetime(driver, f"#audit-{name}", value)
        else:
            fill(driver, f"#audit-{name}", value)
    driver.find_element(By.ID, "audit-search").click()
    query = {k: str(v) for k, v in fields.items()}
    query["limit"] = "50"

    def answered(d):
        shown = urllib.parse.parse_qs(d.find_element(By.ID, "audit").get_attribute("data-query") or "")
        return {k: v[-1] for k, v in shown.items()} == query and expect(audit_ids(d))

    wait_for(driver, what, answered)


def check_cluster(driver, base, regions):
    wait_for(driver, "this node's name", lambda d: d.find_element(By.ID, "node-name").text != "…")
    wait_for(driver, "two connected links", lambda d: len(css(d, "#links tbody tr[data-state=connected]")) == 2)
    wait_for(driver, "three nodes on the map", lambda d: len(css(d, "#map g.node")) == 3)
    assert len(css(driver, "#map g.link.connected")) == 2, "two links drawn as connected"
    assert attrs(driver, "#map g.node.self", "data-region") == [regions[0]]
    _, status = http_get(f"{base}/v1/status")
    if isinstance(status.get("origins"), list):
        # The node knows every node's region: three regions, all connected.
        wait_for(driver, f"regions {regions} on the map",
                 lambda d: sorted(set(attrs(d, "#map g.region", "data-region"))) == sorted(regions))
        wait_for(driver, "the origins table", lambda d: d.find_element(By.ID, "origins-box").is_displayed())
        print("ok: three regions connected, origins shown")
    else:
        assert not driver.find_element(By.ID, "origins-box").is_displayed(), "no origins: table hidden"
        print("ok: three nodes connected (status has no origins: regions of peers unknown, table hidden)")


def check_latency(driver, regions):
    for region in regions:
        wait_for(driver, f"propagation latency from {region}",
                 lambda d, r=region: css(d, f'#latency .latency-region[data-region="{r}"] .fill'))
    print(f"ok: propagation latency from {', '.join(regions)}")


def revoke_through_form(driver, token):
    fill(driver, "#token", token)
    driver.find_element(By.ID, "token-save").click()
    wait_for(driver, "the token taken", lambda d: d.find_element(By.ID, "token-state").text == "token set")
    stored = driver.execute_script(
        "return [sessionStorage.getItem('veto.admin-token'), localStorage.length, document.cookie];")
    assert stored == [token, 0, ""], f"the token is in sessionStorage only: {stored}"

    jti = f"ui-{time.time_ns()}"
    Select(driver.find_element(By.ID, "revoke-scope")).select_by_value("token")
    fill(driver, '#revoke-form input[name="iss"]', "https://idp.example")
    fill(driver, '#revoke-form input[name="jti"]', jti)
    fill(driver, '#revoke-form input[name="reason"]', "leaked in a ticket")
    driver.find_element(By.ID, "revoke-submit").click()
    wait_for(driver, "the revoke answered", lambda d: css(d, "#revoked-id") or css(d, "#revoke-result.error"))
    errors = css(driver, "#revoke-result.error")
    assert not errors, f"revoke failed: {errors[0].text}"
    rid = driver.find_element(By.ID, "revoked-id").text
    wait_for(driver, "the revocation in the audit trail", lambda d: rid in audit_ids(d))
    row = text_of(driver, f'#audit tbody tr[data-id="{rid}"]')
    assert jti in row and "leaked in a ticket" in row, row
    print(f"ok: revoked {rid} through the form; it is in the audit trail")
    return rid, jti


def check_search(driver, rid, jti):
    now = int(time.time())
    search(driver, lambda ids: ids == [rid], "search by key", key=jti)
    search(driver, lambda ids: ids == [rid], "search by key and scope", key=jti, scope="token")
    search(driver, lambda ids: ids == [], "search by key, other scope", key=jti, scope="session")
    search(driver, lambda ids: ids == [rid], "search by key and time", key=jti, since=now - 600, until=now + 600)
    search(driver, lambda ids: ids == [], "search by key, later time", key=jti, since=now + 3600)
    search(driver, lambda ids: rid in ids and len(ids) >= 3, "every record again")
    print("ok: audit search by key, scope and time")


def check_receipt(driver, base, token, rid, regions):
    status, _ = http_get(f"{base}/v1/revocations/{rid}/receipt", token)
    if status == 404:
        click_row(driver, rid)
        time.sleep(2.5)
        assert not driver.find_element(By.ID, "receipt-section").is_displayed(), "no receipts: hidden"
        print("ok: the node serves no receipts (404): the receipt panel stays hidden")
        return
    assert status == 200, f"GET receipt answered {status}"
    # The page learns that receipts are served from the OpenAPI document.
    _, doc = http_get(f"{base}/openapi.json")
    assert "/v1/revocations/{id}/receipt" in doc["paths"], \
        "the node serves receipts but /openapi.json does not list them, so the page cannot know"
    click_row(driver, rid)
    wait_for(driver, "the receipt shown", lambda d: d.find_element(By.ID, "receipt-section").is_displayed())

    def enforced_everywhere(d):
        states = attrs(d, "#receipt tbody tr", "data-state")
        shown = sorted(set(attrs(d, "#receipt tbody tr", "data-region")))
        complete = d.find_element(By.ID, "receipt-complete").get_attribute("data-complete")
        return states == ["enforced"] * len(regions) and shown == sorted(regions) and complete == "true"

    wait_for(driver, f"the receipt enforced in {regions}", enforced_everywhere)
    print(f"ok: the receipt shows {rid} enforced in every region")


def check_markup_is_text(driver, base, token):
    """A record whose reason and jti are markup, revoked through the API, is
    shown as literal text: the cells' textContent is the string, no element is
    parsed out of it, and none of its script runs."""
    jti = f"<b>bold</b>-{time.time_ns()}"
    status, record = http_post(f"{base}/v1/revocations", {
        "scope": "token", "iss": "https://idp.example", "jti": jti, "reason": HOSTILE_REASON,
    }, token)
    assert status in (200, 201), f"POST /v1/revocations answered {status}"
    rid = record["id"]
    assert record["reason"] == HOSTILE_REASON and record["jti"] == jti, record
    search(driver, lambda ids: ids == [rid], "the markup record, searched by its key", key=jti)
    click_row(driver, rid)
    time.sleep(2.5)  # a refresh or two re-renders the table (and the receipt)

    row = f'#audit tbody tr[data-id="{rid}"]'
    cells = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' td')].map(td => td.textContent);", row)
    assert HOSTILE_REASON in cells, f"the reason is shown as text, exactly: {cells}"
    keys = [c for c in cells if "jti=" in c]
    assert keys and f"jti={jti}" in keys[0].split(" "), f"the jti is shown as text: {cells}"
    parsed = driver.execute_script("""
        const row = document.querySelector(arguments[0]);
        return {
          inRow: row ? [...row.querySelectorAll('*')].map(e => e.tagName.toLowerCase())
                         .filter(t => t !== 'td') : null,
          scripts: [...document.querySelectorAll('script')]
                     .filter(e => !e.src || e.textContent.includes('__pwned')).length,
          imgs: [...document.querySelectorAll('img')]
                  .filter(e => e.getAttribute('src') === 'x' || e.hasAttribute('onerror')).length,
          bold: [...document.querySelectorAll('b')].filter(e => e.textContent === 'bold').length,
          pwned: typeof window.__pwned,
        };""", row)
    assert parsed["inRow"] == [], f"the row holds only its cells: {parsed}"
    assert parsed["scripts"] == 0, f"no script element from the record: {parsed}"
    assert parsed["imgs"] == 0, f"no img element from the record: {parsed}"
    assert parsed["bold"] == 0, f"no b element from the key: {parsed}"
    assert parsed["pwned"] == "undefined", f"the record's script never ran: {parsed}"
    print(f"ok: the markup in {rid}'s reason and key is shown as text; no element from it, no script run")


def check_console(driver):
    logs = driver.get_log("browser")
    severe = [e for e in logs if e.get("level") == "SEVERE"]
    assert not severe, "console errors:\n" + "\n".join(e.get("message", "") for e in severe)
    print(f"ok: no console error ({len(logs)} log entries)")
    for e in logs:
        print(f"  browser {e.get('level')}: {e.get('message', '')[:200]}")


def screenshot(driver, path):
    """The whole page, from the top."""
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    driver.set_window_size(1400, max(900, min(height + 160, 4000)))
    driver.execute_script("window.scrollTo(0, 0);")
    time.sleep(0.5)
    driver.save_screenshot(path)
    print(f"ok: screenshot saved to {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("token")
    ap.add_argument("--regions", required=True)
    ap.add_argument("--latency-from", required=True)
    args = ap.parse_args()
    regions = args.regions.split(",")
    profile = tempfile.mkdtemp(prefix="veto-ui-chromium-")
    driver = browser(profile)
    try:
        driver.get(f"{args.base}/ui")
        check_cluster(driver, args.base, regions)
        check_latency(driver, args.latency_from.split(","))
        rid, jti = revoke_through_form(driver, args.token)
        check_search(driver, rid, jti)
        check_receipt(driver, args.base, args.token, rid, regions)
        check_console(driver)
        shot = os.environ.get("VETO_UI_SCREENSHOT")
        if shot:
            screenshot(driver, shot)
        check_markup_is_text(driver, args.base, args.token)
        check_console(driver)
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
