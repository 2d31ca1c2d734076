#!/usr/bin/env python3
"""Drives Debian's chromium (headless, through chromedriver and selenium) through the /audit
page of a running tickiti-mail server and checks what a support person sees:

  - a wrong token → the prompt again, with an error;
  - the right token → the list of sent messages; a subject full of HTML shows as text;
  - search by recipient (any case) → only that recipient's rows;
  - a message's detail → its rendered HTML in the sandboxed frame, its text part, headers;
  - an email with <script>, onerror= and javascript: links runs nothing: neither the
    markers those scripts would set in the frame nor in the page appear, even after
    clicking the javascript: link;
  - a token revoked while the page is open → back to the prompt on the next request.

Screenshots of the list and of the detail view are written to --artifacts. Exits non-zero
(with the reason) on the first failed check. Used by Tests/IntegrationTests/AuditPageTests.
"""
import argparse, json, subprocess, sys, time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--token", required=True)
p.add_argument("--evil-subject", required=True)
p.add_argument("--recipient", required=True, help="a recipient to search for, in another case")
p.add_argument("--recipient-count", type=int, required=True)
p.add_argument("--total", type=int, required=True)
p.add_argument("--revoke", required=True, help="JSON argv that revokes --token")
p.add_argument("--artifacts", required=True)
a = p.parse_args()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000",
            "--no-first-run", "--disable-extensions", "--disable-background-networking", "--disable-sync"]:
    opts.add_argument(arg)
opts.accept_insecure_certs = True   # the test's own self-signed certificate
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
driver.set_page_load_timeout(30)
wait = WebDriverWait(driver, 15)

MARKER_CHECK = """
  return {
    pageMarker: document.body.hasAttribute('data-pwned') || window.__pwned !== undefined,
    title: document.title,
  };
"""

try:
    driver.get(a.url + "/audit")
    wait.until(EC.visibility_of_element_located((By.ID, "token-input")))
    check(not driver.find_element(By.ID, "list").is_displayed(), "the list is hidden until a token is given")

    # A wrong token: the prompt comes back with an error.
    driver.find_element(By.ID, "token-input").send_keys("1|wrongwrongwrongwrongwrongwrongwrongwrong")
    driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(lambda d: d.find_element(By.ID, "prompt-error").is_displayed())
    check("not valid" in driver.find_element(By.ID, "prompt-error").text, "a wrong token shows the prompt again with an error")
    check(driver.find_element(By.ID, "token-input").is_displayed(), "the prompt is shown")
    check(driver.execute_script("return sessionStorage.length") == 0, "a refused token is not kept")

    # The right token: the list.
    driver.find_element(By.ID, "token-input").send_keys(a.token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == a.total)
    check(driver.execute_script("return document.cookie") == "", "no cookie")
    check(a.token not in driver.current_url, "the token is not in the URL")
    check(driver.execute_script("return sessionStorage.getItem('tickiti-audit-token')") == a.token, "the token is kept for this tab")
    subjects = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#rows td.subject")]
    check(a.evil_subject in subjects, "a subject made of HTML is shown as text")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#rows img, #rows script")) == 0, "no element was made from email data")
    driver.save_screenshot(a.artifacts + "/audit-list.png")

    # Search by recipient.
    box = driver.find_element(By.ID, "f-to")
    box.send_keys(a.recipient)
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == a.recipient_count
               and all(td.text.lower() == a.recipient.lower() for td in d.find_elements(By.CSS_SELECTOR, "#rows tr td:first-child")))
    check(True, f"search by recipient shows its {a.recipient_count} message(s)")
    box.clear()
    box.send_keys("nobody@example.invalid")
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait.until(lambda d: "No messages match" in d.find_element(By.ID, "list-state").text)
    check(True, "an empty result says so")
    driver.find_element(By.ID, "f-clear").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == a.total)

    # The hostile message's detail.
    row = next(tr for tr in driver.find_elements(By.CSS_SELECTOR, "#rows tr")
               if tr.find_element(By.CSS_SELECTOR, "td.subject").text == a.evil_subject)
    row.click()
    wait.until(lambda d: d.find_element(By.ID, "detail-body").is_displayed())
    frame = driver.find_element(By.ID, "d-html")
    check(frame.get_attribute("sandbox") == "", "the frame's sandbox grants nothing (no allow-scripts)")
    check("<script>" in (frame.get_attribute("srcdoc") or ""), "the HTML is given to the frame as srcdoc")
    check(driver.find_element(By.ID, "d-subject").text == a.evil_subject, "the detail's subject is text")
    check("Evil newsletter" in driver.find_element(By.ID, "d-text").text, "the text part is shown")
    headers = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#d-headers td:first-child")]
    check("Message-ID" in headers and "Subject" in headers, "the headers are listed")
    files = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#d-files li")]
    check(files == ["No attachments."], "a message without files says so")
    check(driver.find_element(By.ID, "d-eml").is_displayed(), "the whole message can be downloaded (.eml)")
    driver.switch_to.frame(frame)
    wait.until(lambda d: "Evil newsletter" in d.find_element(By.TAG_NAME, "body").text)
    body_text = driver.find_element(By.TAG_NAME, "body").text
    check("Evil newsletter" in body_text, "the rendered HTML is shown in the frame")
    check("SCRIPT RAN" not in body_text and "HANDLER RAN" not in body_text, "no script or handler ran inside the frame")
    links = driver.find_elements(By.CSS_SELECTOR, "a[href^='javascript:']")
    check(len(links) == 1, "the javascript: link is there")
    try:
        links[0].click()
    except WebDriverException as e:
        print("clicking the javascript: link:", e.msg, flush=True)
    # Checking that something did not happen: there is no event to wait for, so give a
    # would-be handler a bounded moment (a script that runs does so within milliseconds).
    time.sleep(0.3)
    body_text = driver.find_element(By.TAG_NAME, "body").text
    check("LINK RAN" not in body_text, "the javascript: link ran nothing")
    driver.switch_to.default_content()
    m = driver.execute_script(MARKER_CHECK)
    check(not m["pageMarker"], "nothing from the email touched the page")
    check(m["title"] == "Sent mail audit · tickiti-mail", "the page title is untouched")
    driver.save_screenshot(a.artifacts + "/audit-detail.png")
    own = [e["message"] for e in driver.get_log("browser")
           if "Content Security Policy" in e["message"] and "audit.js" in e["message"]]
    check(not own, "the page's own script breaks no CSP rule")

    # A token revoked while the page is open: back to the prompt.
    driver.find_element(By.ID, "back").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == a.total)
    out = subprocess.run(json.loads(a.revoke), capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, "revoked the token: " + out.stdout + out.stderr)
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.ID, "token-input").is_displayed())
    check("not valid" in driver.find_element(By.ID, "prompt-error").text, "a revoked token sends the person back to the prompt")
    check(driver.execute_script("return sessionStorage.length") == 0, "the revoked token is forgotten")
    print("BROWSER CHECKS PASSED", flush=True)
except (AssertionError, TimeoutException) as e:
    try:
        driver.save_screenshot(a.artifacts + "/audit-failure.png")
    except Exception:
        pass
    print("FAILED:", type(e).__name__, e, flush=True)
    for entry in driver.get_log("browser"):
        print("console:", entry["message"], flush=True)
    sys.exit(1)
finally:
    driver.quit()
