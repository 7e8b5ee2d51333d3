"""The labeling page: its session (answers, undo, sub-batches, the state file read before and
written after each change), its HTTP guards, and the page itself in a real browser through
``torch-al annotate``."""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
from labeling_browser import chromium_driver
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.labeling_page import AnswerRefused, LabelingServer, LabelingSession
from torch_al.strategies.base import SubBatch

CLASSES = ["t-shirt", "trouser", "pullover"]


def images(n=40):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def make_pool(classes=CLASSES) -> ActivePool:
    return ActivePool(TensorDataset(images()), target_key=None, classes=classes)


def proposed(tmp_path, indices=(5, 9, 2), final=True) -> str:
    pool = make_pool()
    pool.propose(list(indices), strategy="pfk", final=final)
    pool.save(tmp_path / "pool.pt")
    return str(tmp_path / "pool.pt")


def saved(path) -> ActivePool:
    return make_pool().load(path)


def rows(pool: ActivePool):
    ledger = pool.ledger
    return list(zip(ledger.index.tolist(), ledger.label.tolist(), ledger.round.tolist()))


# ---- the session -----------------------------------------------------------------------------
def test_answers_are_saved_one_at_a_time_and_the_round_completes(tmp_path):
    path = proposed(tmp_path)
    session = LabelingSession(make_pool(), path)
    shown = session.snapshot()
    assert [item["index"] for item in shown["items"]] == [5, 9, 2] and shown["classes"] == CLASSES
    assert shown["status"] == "labeling" and shown["answered"] == 0 and shown["items"][0]["kind"] == "image"
    session.answer(9, 1)
    assert rows(saved(path)) == [(9, 1, 1)]  # on disk at once
    assert session.answer(9, 1)["answered"] == 1  # the same answer again (a resent request): nothing twice
    session.answer(5, 0)
    done = session.answer(2, 2)
    assert done["status"].startswith("round 1 is complete") and done["answered"] == 3 and done["round"] == 1
    assert saved(path).round == 1 and rows(saved(path)) == [(9, 1, 1), (5, 0, 1), (2, 2, 1)]


@pytest.mark.parametrize(
    "index, label, status, message",
    [
        (9, 3, 400, r"label 3 is not a class: the classes are 0..2"),
        (9, -1, 400, "label -1 is not a class"),
        (9, "1", 400, "label must be an integer, got '1'"),
        (True, 1, 400, "index must be an integer"),
        (None, 1, 400, "index must be an integer, got None"),
        (11, 1, 409, "item 11 is not in the pending query"),
        (5, 2, 409, r"item 5 is already labeled 't-shirt'; undo reopens"),
    ],
)
def test_bad_answers_are_refused_and_nothing_is_recorded(tmp_path, index, label, status, message):
    path = proposed(tmp_path)
    session = LabelingSession(make_pool(), path)
    session.answer(5, 0)
    before = open(path, "rb").read()
    with pytest.raises(AnswerRefused, match=message) as refused:
        session.answer(index, label)
    assert refused.value.status == status and open(path, "rb").read() == before


def test_undo_reopens_the_last_answer_and_the_ledger_appends_the_correction(tmp_path):
    path = proposed(tmp_path)
    session = LabelingSession(make_pool(), path)
    with pytest.raises(AnswerRefused, match="nothing to undo"):
        session.undo()
    session.answer(5, 0)
    session.answer(9, 1)
    reopened = session.undo()
    assert reopened["reopened"] == 9 and reopened["can_undo"]
    session.answer(9, 2)
    assert rows(saved(path)) == [(5, 0, 1), (9, 1, 1), (9, 2, 1)] and saved(path).labels_of([9]).tolist() == [2]
    session.answer(2, 0)  # completes the round; its last answer can still be corrected
    assert session.undo()["reopened"] == 2
    after = session.answer(2, 1)
    assert after["reopened"] is None and saved(path).labels_of([2]).tolist() == [1] and saved(path).round == 1
    assert [item["index"] for item in after["items"]] == [5, 9, 2]  # the completed query stays on screen


def test_a_round_asked_in_sub_batches_shows_the_next_one_when_one_is_answered(tmp_path):
    path = proposed(tmp_path, (5,), final=False)
    asked = iter([SubBatch(torch.tensor([7, 8]), torch.tensor([0.5, 0.4]), False), SubBatch(torch.tensor([1]), None, True)])
    seen = []

    def next_sub_batch(pool):
        seen.append(pool.open_round_answered)
        return next(asked)

    session = LabelingSession(make_pool(), path, next_sub_batch=next_sub_batch, strategy="galaxy")
    after = session.answer(5, 1)
    assert [item["index"] for item in after["items"]] == [7, 8] and after["open_round_answered"] == 1 and after["round"] == 1
    session.answer(8, 0)
    assert [item["index"] for item in session.answer(7, 0)["items"]] == [1]
    final = session.answer(1, 2)
    assert seen == [1, 3] and final["status"].startswith("round 1 is complete")
    pool = saved(path)
    assert pool.round == 1 and rows(pool) == [(5, 1, 1), (8, 0, 1), (7, 0, 1), (1, 2, 1)]
    os.makedirs(tmp_path / "other")
    without = LabelingSession(make_pool(), proposed(tmp_path / "other", (5,), final=False))
    assert without.answer(5, 0)["status"].startswith("waiting for the next sub-batch: run torch-al select")


def test_the_state_file_is_read_before_each_change(tmp_path):
    path = proposed(tmp_path)
    session = LabelingSession(make_pool(), path)
    elsewhere = saved(path)
    elsewhere.label([5], [2])  # e.g. torch-al label run beside the page
    elsewhere.save(path)
    assert session.snapshot()["items"][0]["label"] == 2
    with pytest.raises(AnswerRefused, match="already labeled 'pullover'"):
        session.answer(5, 0)
    other = make_pool(classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"the class names \['a', 'b', 'c'\] are not the \['t-shirt', 'trouser', 'pullover'\] recorded"):
        LabelingSession(other, path)
    with pytest.raises(ValueError, match="classes have no names"):
        LabelingSession(make_pool(classes=None), path)


# ---- HTTP ------------------------------------------------------------------------------------
@pytest.fixture
def serving(tmp_path):
    servers = []

    def start(token=None, host="127.0.0.1", **session_options):
        server = LabelingServer(LabelingSession(make_pool(), proposed(tmp_path), **session_options), host, 0, token)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def request(url, body=None, headers=None, method=None):
    """(status, JSON or bytes) of one request."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    sent = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            status, payload, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, payload, kind = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(payload) if kind == "application/json" else payload


PAGE = {"X-Torch-AL": "1", "Content-Type": "application/json"}


def test_the_server_serves_the_page_items_and_answers(serving):
    server = serving()
    base = server.url
    assert request(base)[0] == 200 and b"static/page.js" in request(base)[1]
    assert request(base + "static/page.js")[0] == 200 and request(base + "static/other.js")[0] == 404
    status, image = request(base + "item/9")
    assert status == 200 and image.startswith(b"\x89PNG")
    assert request(base + "item/11")[0] == 404 and request(base + "item/abc")[0] == 404
    status, state = request(base + "api/answer", {"index": 9, "label": 1}, PAGE)
    assert status == 200 and state["answered"] == 1
    assert request(base + "api/undo", {}, PAGE)[1]["reopened"] == 9


@pytest.mark.parametrize(
    "body, headers, status, message",
    [
        ({"index": 9, "label": 1}, {"Content-Type": "application/json"}, 403, "header X-Torch-AL: 1"),
        ({"index": 9, "label": 1}, {"X-Torch-AL": "1", "Content-Type": "text/plain"}, 415, "must be JSON"),
        (b"{not json", PAGE, 400, "not JSON"),
        ([9, 1], PAGE, 400, "a JSON object, got list"),
        (b"x" * 5000, PAGE, 400, "at most 4096 bytes"),
        ({"index": 9, "label": 7}, PAGE, 400, "label 7 is not a class"),
        ({"index": 30, "label": 0}, PAGE, 409, "item 30 is not in the pending query"),
        ({"index": 9, "label": 1}, {**PAGE, "Host": "evil.example:80"}, 403, "not this machine's loopback address"),
    ],
)
def test_bad_requests_are_refused_and_record_nothing(serving, body, headers, status, message):
    server = serving()
    got, payload = request(server.url + "api/answer", body, headers)
    assert got == status and message in payload["error"]
    assert make_pool().load(server.session.state_path).ledger.index.numel() == 0


def test_a_token_guards_every_request(serving):
    server = serving(token="s3cret")
    base = server.url.split("?")[0]
    assert server.url.endswith("?token=s3cret")
    for path in ("", "api/query", "item/9", "static/page.js"):
        assert request(base + path)[0] == 401
    assert request(base + "api/query?token=wrong")[0] == 401
    assert request(base + "api/query", headers={"X-Torch-AL-Token": "s3cret"})[0] == 200
    assert request(base + "item/9?token=s3cret")[0] == 200
    assert request(base + "api/answer", {"index": 9, "label": 1}, {**PAGE, "X-Torch-AL-Token": "s3cret"})[0] == 200
    status, page = request(server.url)
    assert status == 200
    assert request(base + "static/page.js", headers={"Cookie": "torch_al_token=s3cret"})[0] == 200  # what the browser sends after the page
    assert request(base + "static/page.js", headers={"Cookie": "torch_al_token=other"})[0] == 401
    other = serving(host="0.0.0.0")
    assert other.token and len(other.token) >= 24  # any address but loopback gets a token


# ---- the page in a real browser ------------------------------------------------------------
@pytest.fixture
def browser():
    driver = chromium_driver()
    yield driver
    driver.quit()


@pytest.fixture
def annotate(tmp_path):
    """Starts ``torch-al annotate`` on a free port; yields a function that returns its URL."""
    processes = []

    def start(*arguments):
        command = [sys.executable, "-m", "torch_al", "annotate", "--port", "0", *arguments]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        line = process.stdout.readline()
        found = re.search(r"labeling page: (\S+)", line)
        assert found, f"torch-al annotate printed {line!r}; stderr: {process.stderr.read() if process.poll() is not None else ''}"
        return found.group(1)

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)


def wait_for(driver, condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition(driver)
            if value:
                return value
        except Exception:  # the page is redrawing: look again
            pass
        time.sleep(0.05)
    raise AssertionError(f"the page did not reach the expected state; it shows: {driver.find_element('tag name', 'body').text[:500]}")


def progress(driver) -> str:
    return driver.find_element("id", "progress-text").text


def press(driver, keys: str) -> None:
    driver.find_element("tag name", "body").send_keys(keys)


def test_label_by_keys_and_clicks_reload_midway_undo_and_a_refused_request(tmp_path, browser, annotate):
    data = tmp_path / "data.pt"
    torch.save(images(), data)
    pool = make_pool(classes=None)
    query = [5, 9, 2, 17, 30, 11]
    pool.propose(query, torch.linspace(1, 0, 6), strategy="pfk")
    pool.save(tmp_path / "pool.pt")
    url = annotate("--state", str(tmp_path / "pool.pt"), "--data", str(data), "--classes", *CLASSES)
    browser.get(url)
    wait_for(browser, lambda d: progress(d) == "0 of 6 labeled")
    assert len(browser.find_elements("css selector", "#grid .item img")) == 6
    press(browser, "2")  # item 5: trouser
    wait_for(browser, lambda d: progress(d) == "1 of 6 labeled")
    browser.find_element("css selector", "#classes button[data-label='2']").click()  # item 9: pullover
    wait_for(browser, lambda d: progress(d) == "2 of 6 labeled")
    browser.refresh()  # reload midway: the page starts again from the server's ledger
    wait_for(browser, lambda d: progress(d) == "2 of 6 labeled" and "current" in d.find_element("id", "item-2").get_attribute("class"))
    press(browser, "1")  # item 2: t-shirt
    wait_for(browser, lambda d: progress(d) == "3 of 6 labeled")
    press(browser, "u")  # undo reopens item 2
    wait_for(browser, lambda d: "current" in d.find_element("id", "item-2").get_attribute("class") and progress(d) == "3 of 6 labeled")
    press(browser, "3")  # corrected to pullover
    wait_for(browser, lambda d: "pullover" in d.find_element("id", "item-2").text)
    browser.find_element("id", "item-30").click()  # out of order
    press(browser, "1")
    wait_for(browser, lambda d: progress(d) == "4 of 6 labeled")
    refused = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('api/answer', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({index: 17, label: 0})})"
        ".then(r => done(r.status))"
    )
    assert refused == 403  # without the page's header: not recorded
    press(browser, "21")  # typed at once: item 11 (after 30), then 17 (the round wraps); none is dropped
    wait_for(browser, lambda d: "round 1 is complete" in d.find_element("id", "status").text)
    os.makedirs("build", exist_ok=True)
    browser.save_screenshot(os.path.join("build", "labeling_page_test.png"))
    result = saved(tmp_path / "pool.pt")
    assert result.round == 1 and result.classes == tuple(CLASSES)
    assert rows(result) == [(5, 1, 1), (9, 2, 1), (2, 0, 1), (2, 2, 1), (30, 0, 1), (11, 1, 1), (17, 0, 1)]


def test_the_page_works_behind_its_token(tmp_path, browser, annotate):
    torch.save(images(), tmp_path / "data.pt")
    path = proposed(tmp_path)
    url = annotate("--state", path, "--data", str(tmp_path / "data.pt"), "--token", "t0ken")
    assert url.endswith("/?token=t0ken")
    browser.get(url.split("?")[0])
    wait_for(browser, lambda d: "needs its token" in d.find_element("tag name", "body").text)
    browser.get(url)
    wait_for(browser, lambda d: progress(d) == "0 of 3 labeled" and d.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
    press(browser, "3")
    wait_for(browser, lambda d: progress(d) == "1 of 3 labeled")
    assert rows(saved(path)) == [(5, 2, 1)]


def test_a_strategy_that_asks_within_its_round_continues_on_the_page(tmp_path, browser, annotate):
    data, model = tmp_path / "data.pt", tmp_path / "model.pt"
    torch.save(images(), data)
    torch.manual_seed(0)
    torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))).save(model)
    pool = make_pool()
    pool.label([0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 1, 2])
    pool.save(tmp_path / "pool.pt")
    common = ["--state", str(tmp_path / "pool.pt"), "--data", str(data)]
    selected = subprocess.run([sys.executable, "-m", "torch_al", "select", *common, "--model", str(model), "--strategy", "galaxy", "--budget", "4"], capture_output=True, text=True, check=True)
    assert json.loads(selected.stdout)["final"] is False
    browser.get(annotate(*common, "--model", str(model), "--strategy", "galaxy", "--budget", "4"))
    for answered in range(4):  # GALAXY asks one item at a time: each appears once the last is answered
        wait_for(browser, lambda d: d.find_elements("css selector", ".item.current"))
        press(browser, "1")
        wait_for(browser, lambda d, answered=answered: "round 1 is complete" in d.find_element("id", "status").text or f"({answered + 1} more in earlier" in progress(d))
    wait_for(browser, lambda d: "round 1 is complete" in d.find_element("id", "status").text)
    result = saved(tmp_path / "pool.pt")
    assert result.round == 1 and result.labeled_mask.sum() == 10 and result.ledger.round.tolist()[6:] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--model", "m.pt"], "--model and --strategy go together"),
        (["--validation", "v.pt"], "--validation, --layers and --tokens choose sub-batches with --model"),
        (["--model", "m.pt", "--strategy", "pfk-direct"], "pass --validation FILE and --layers"),
        (["--classes", "only"], "at least two distinct names"),
    ],
)
def test_annotate_refuses_options_that_do_not_fit(options, message, capsys):
    from torch_al.cli import main

    with pytest.raises(SystemExit):
        main(["annotate", "--state", "s.pt", "--data", "d.pt", *options])
    assert message in capsys.readouterr().err


def test_an_earlier_sub_batch_answer_reopened_stays_on_screen_and_a_failed_choice_is_retried(tmp_path):
    path = proposed(tmp_path, (5,), final=False)
    outcomes = iter([RuntimeError("the model is gone"), SubBatch(torch.tensor([7, 8]), None, True)])

    def next_sub_batch(pool):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    session = LabelingSession(make_pool(), path, next_sub_batch=next_sub_batch)
    with pytest.raises(RuntimeError, match="the model is gone"):
        session.answer(5, 1)
    assert rows(saved(path)) == [(5, 1, 1)]  # the answer was saved before the choice failed
    retried = session.snapshot()  # a reload of the page chooses again
    assert [item["index"] for item in retried["items"]] == [7, 8] and retried["status"] == "labeling"
    session.undo()
    again = session.snapshot()
    assert again["reopened"] == 5 and [item["index"] for item in again["items"]] == [7, 8, 5]
    after = session.answer(5, 2)
    assert [item["index"] for item in after["items"]] == [7, 8] and rows(saved(path))[-1] == (5, 2, 1)


def test_a_failure_is_answered_on_the_page_and_the_server_keeps_serving(serving):
    unshowable = serving(render=lambda x: {"not": "an image"})
    status, payload = request(unshowable.url + "api/query")
    assert status == 500 and "cannot show an item of type dict" in payload["error"]
    server = serving()
    assert request(server.url + "api/query")[0] == 200
    with open(server.session.state_path, "wb") as broken:
        broken.write(b"not a state file")
    status, payload = request(server.url + "api/query")
    assert status == 500 and "StateFileError" in payload["error"]
    assert request(server.url + "static/page.js")[0] == 200
