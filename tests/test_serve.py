"""alife_nas.serve and ``alife-nas serve``: the live page, its API, its token, and that it only reads."""
from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from alife_nas.search import Search
from alife_nas.serve import COOKIE, find_runs, make_server
from alife_nas.store import RunStore
from tests.browser import Page, chromium
from tests.conftest import fake_score, run_search, tree_state

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def served(tmp_path):
    """A folder of two runs (cheap fitness) served from a thread; yields (server, folder)."""
    folder = tmp_path / "runs"
    run_search(folder / "alpha", lattice=3, steps=2, seed=1)
    run_search(folder / "beta", lattice=2, steps=1, seed=2)
    (folder / "not-a-run").mkdir()
    server = make_server(folder, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server, folder
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def request(port, path, method="GET", host=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_every_request_needs_the_token_and_this_host(served):
    server, _ = served
    port, token = server.port, server.token
    assert server.url == f"http://127.0.0.1:{port}/?token={token}" and len(token) >= 24
    for path in ("/", "/api/runs", "/api/run/alpha", "/?token=wrong", "/api/runs?token=" + token[:-1]):
        status, _, body = request(port, path)
        assert status == 403, path
        assert b"alpha" not in body
    status, headers, body = request(port, f"/?token={token}")
    assert status == 200 and b"alife_nas" in body
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={token};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert request(port, "/api/runs", headers={"Cookie": f"{COOKIE}={token}"})[0] == 200
    assert request(port, "/api/runs", headers={"Cookie": f"{COOKIE}=nope"})[0] == 403
    assert request(port, f"/api/runs?token={token}", host=f"localhost:{port}")[0] == 200
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", ""):  # DNS rebinding, no port
        assert request(port, f"/api/runs?token={token}", host=host)[0] == 403, host


def test_only_get_and_head_are_answered(served):
    server, folder = served
    before = tree_state(folder)
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = request(server.port, f"/api/runs?token={server.token}", method=method)
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    status, headers, body = request(server.port, f"/api/runs?token={server.token}", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert {k: v for k, v in tree_state(folder).items() if not k.endswith(("-wal", "-shm"))} == \
        {k: v for k, v in before.items() if not k.endswith(("-wal", "-shm"))}


def test_the_api_lists_the_runs_and_gives_what_is_new(served):
    server, folder = served
    q = f"token={server.token}"
    status, _, body = request(server.port, f"/api/runs?{q}")
    runs = json.loads(body)["runs"]
    assert status == 200 and [r["name"] for r in runs] == ["alpha", "beta"]
    assert runs[0]["steps_done"] == 2 and runs[0]["initialized"]
    with RunStore.open(folder / "alpha", readonly=True) as store:
        orders = [ev.order for ev in store.evaluations()]
        trainings = store.totals()["trainings"]
    status, _, body = request(server.port, f"/api/run/alpha?{q}&since=0&after=5")
    data = json.loads(body)
    assert [s["step"] for s in data["steps"]] == [1, 2]
    assert [t["order"] for t in data["trainings"]] == [o for o in orders if o > 5]
    assert data["status"]["trainings"] == trainings and data["top"]
    assert json.loads(request(server.port, f"/api/run/alpha?{q}&since=2&after={orders[-1]}")[2])["steps"] == []
    assert request(server.port, f"/api/run/gamma?{q}")[0] == 404
    assert request(server.port, f"/api/run/not-a-run?{q}")[0] == 404
    assert request(server.port, f"/api/run/alpha?{q}&since=x")[0] == 400
    assert request(server.port, f"/elsewhere?{q}")[0] == 404


def test_one_run_or_a_folder_of_runs(tmp_path):
    run = run_search(tmp_path / "one", lattice=2, steps=1)
    assert find_runs(run) == {"one": run}
    assert find_runs(tmp_path) == {"one": run}
    assert find_runs(tmp_path / "missing") == {}
    with pytest.raises(ValueError, match="not a folder"):
        make_server(tmp_path / "missing")


def test_the_live_page_shows_a_new_step_when_the_run_goes_on(served, browser):
    server, folder = served
    with Page(browser) as p:
        page = p.page
        page.goto(server.url)
        page.wait_for_selector("section.run[data-run=alpha] .lattice .cell")
        label = "section.run[data-run=alpha] .step-label"
        assert page.text_content(label).startswith("step 2 ")
        assert page.eval_on_selector_all("section.run", "s => s.map(x => x.dataset.run)") == ["alpha", "beta"]
        with Search.open(folder / "alpha", score=fake_score, steps=3) as search:  # the run goes on by a step
            search.run()
            lattice = search.store.last_step().lattice
        end = time.monotonic() + 15  # the page polls every 2 s (waited for here: the page's CSP forbids eval)
        while not page.text_content(label).startswith("step 3 ") and time.monotonic() < end:
            page.wait_for_timeout(200)
        assert page.text_content(label).startswith("step 3 ")
        shown = page.eval_on_selector_all("section.run[data-run=alpha] .lattice .cell", "cs => cs.map(c => c.dataset.genome)")
        assert shown == [g for row in lattice["genomes"] for g in row]
        with RunStore.open(folder / "alpha", readonly=True) as store:
            best = store.best_evaluation()
        nodes = page.eval_on_selector_all("section.run[data-run=alpha] .lineage-graph g.node", "g => g.map(n => n.dataset.genome)")
        assert nodes[0] == best.genome
        assert "live" in page.text_content("#live-status") and p.errors == []


def test_the_page_fetches_with_the_token_and_nothing_else(served, browser):
    server, _ = served
    with Page(browser) as p:
        urls = []
        p.page.on("request", lambda r: urls.append(r.url))
        p.page.goto(server.url)
        p.page.wait_for_selector("section.run")
        p.page.wait_for_timeout(2500)  # one poll
        base = f"http://127.0.0.1:{server.port}/"
        assert urls and all(u.startswith(base) and f"token={quote(server.token)}" in u for u in urls), urls
        assert p.errors == []


# --- read-only ------------------------------------------------------------------------------------
def _obey_permissions():
    """As root, drop the capabilities that let root ignore permission bits (read-only is then read-only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH out of the bounding set
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


SERVER = """
import sys
from alife_nas.serve import make_server
server = make_server(sys.argv[1], port=0, token="t0ken-for-the-test-only-123")
print(server.port, flush=True)
server.serve_forever(poll_interval=0.1)
"""


def test_serve_reads_a_read_only_run_and_writes_nothing(tmp_path):
    source = run_search(tmp_path / "run", lattice=3, steps=2)
    target = tmp_path / "published" / "run"
    shutil.copytree(source, target)
    paths = [*target.iterdir(), target, target.parent]
    for path in paths:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
                                                                  if path.is_dir() else 0))
    before = tree_state(target.parent)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(target.parent)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_obey_permissions if os.geteuid() == 0 else None)
    try:
        port = int(proc.stdout.readline())
        q = "token=t0ken-for-the-test-only-123"
        status, _, body = request(port, f"/?{q}")
        assert status == 200 and b'"name":"run"' in body
        status, _, body = request(port, f"/api/run/run?{q}&since=-1&after=0")
        assert status == 200 and [s["step"] for s in json.loads(body)["steps"]] == [0, 1, 2]
        assert request(port, f"/api/runs?{q}")[0] == 200
        assert request(port, f"/api/runs?{q}", method="POST")[0] == 405
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for path in paths:
            path.chmod(0o755)
    assert tree_state(target.parent) == before
    assert sorted(p.name for p in target.iterdir()) == sorted(Path(k).name for k in before)
    assert proc.returncode is not None  # the server process is gone


# --- the command ----------------------------------------------------------------------------------
def test_serve_command_prints_the_url_and_refuses_mistakes(tmp_path):
    from click.testing import CliRunner

    from alife_nas.cli import main

    result = CliRunner().invoke(main, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "is not a folder" in result.output
    run_search(tmp_path / "runs" / "a", lattice=2, steps=1)
    proc = subprocess.Popen([sys.executable, "-m", "alife_nas", "serve", str(tmp_path / "runs"), "--port", "0"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith(f"serving {tmp_path / 'runs'}: a")
        url = lines[1].split()[1]
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        port = int(url.split(":")[2].split("/")[0])
        assert request(port, "/" + url.split("/", 3)[3])[0] == 200
        busy = subprocess.run([sys.executable, "-m", "alife_nas", "serve", str(tmp_path / "runs"), "--port", str(port)],
                              cwd=REPO, capture_output=True, text=True, timeout=30)
        assert busy.returncode == 2 and f"port {port} is in use" in busy.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bound_beyond_the_loopback_an_address_may_name_it_but_no_other_name(tmp_path):
    server = make_server(tmp_path, host="0.0.0.0", port=0)
    try:
        port = server.port
        assert server.url.startswith(f"http://127.0.0.1:{port}/?token=")
        for ok in (f"127.0.0.1:{port}", f"localhost:{port}", f"192.168.1.20:{port}", f"[fe80::1]:{port}"):
            assert server.host_allowed(ok), ok
        for bad in (f"evil.example:{port}", f"192.168.1.20:{port + 1}", "192.168.1.20", ""):
            assert not server.host_allowed(bad), bad
    finally:
        server.server_close()
    server = make_server(tmp_path, port=0)
    try:
        assert not server.host_allowed(f"192.168.1.20:{server.port}")  # on the loopback: its names only
    finally:
        server.server_close()
