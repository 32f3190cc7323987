"""Attacks on a running `driftwarden up`, as a client on the network would try them (issue 11): each is refused.

Read-only SQL (both SETTINGS bypasses, WITH ... INSERT, INSERT INTO FUNCTION, file, url, remote,
/proc/self/environ, INTO OUTFILE), limits (a heavy query is cut while ingest keeps writing; a 1e7-row query
returns at most the row limit with bounded memory), the HTTP server (adversarial and undecodable bodies, slow
clients, too many connections), authentication, and binding without a token.
"""

from __future__ import annotations

import asyncio
import http.server
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from stream.demo.synthetic import Scenario
from tests.helpers import wait_until
from tests.integration.conftest import Worker, http_json, worker_env

pytestmark = pytest.mark.integration


def _post(url: str, body: bytes, token: str | None = None, timeout: float = 120) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"null")


def _metric(worker: Worker, name: str, **labels: str) -> float:
    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + ("{" + wanted + "}" if wanted else " ")) or (
                not wanted and line.startswith(name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"a\n")

    def log_message(self, *args: Any) -> None:
        pass


def test_sql_attacks_are_refused_by_a_running_service(make_worker: Any, tmp_path: Path) -> None:
    worker = make_worker("attacks", DRIFTWARDEN_SQL_MAX_RESULT_ROWS="1000").start()
    sql = worker.url + "/sql"
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)  # would see a server-side request
    threading.Thread(target=server.serve_forever, daemon=True).start()
    listener = socket.create_server(("127.0.0.1", 0))  # would see remote() connect
    listener.settimeout(0.5)
    written = tmp_path / "written.csv"
    outfile = tmp_path / "outfile.txt"
    attacks = {
        "SETTINGS clause": "SELECT * FROM file('/etc/passwd', 'LineAsString') SETTINGS max_threads = 1",
        "SETTINGS in a literal": "SELECT ' SETTINGS ' AS s, * FROM file('/etc/passwd', 'LineAsString')",
        "readonly off": "SELECT 1 SETTINGS readonly = 0",
        "WITH INSERT": "WITH 1 AS x INSERT INTO driftwarden.dead_letters (reason) SELECT 'pwned'",
        "INSERT INTO FUNCTION": f"INSERT INTO FUNCTION file('{written}', 'CSV') SELECT 1",
        "environ": "SELECT * FROM file('/proc/self/environ', 'LineAsString')",
        "scalar file": "SELECT file('/proc/self/environ')",
        "url": f"SELECT * FROM url('http://127.0.0.1:{server.server_port}/ssrf', 'CSV', 'a String')",
        "url in a subquery": f"SELECT 1 WHERE 'a' IN (SELECT * FROM url('http://127.0.0.1:{server.server_port}/x', "
                             "'CSV', 'a String'))",
        "remote": f"SELECT * FROM remote('127.0.0.1:{listener.getsockname()[1]}', 'system.one')",
        "INTO OUTFILE": f"SELECT 1 INTO OUTFILE '{outfile}'",
        "two statements": "SELECT 1; INSERT INTO driftwarden.dead_letters (reason) VALUES ('pwned')",
        "DDL": "DROP TABLE driftwarden.outcomes",
    }
    try:
        for name, attack in attacks.items():
            status, body = _post(sql, attack.encode())
            assert status == 400, (name, status, body)
            assert "root:" not in str(body) and "DRIFTWARDEN" not in str(body), name
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        server.shutdown()
        server.server_close()
        listener.close()
    assert _Recorder.hits == []
    assert not written.exists() and not outfile.exists()
    assert worker.sql("SELECT count() AS n FROM driftwarden.dead_letters WHERE reason = 'pwned'") == [{"n": 0}]

    # at most the row limit, streamed: the worker's peak memory does not follow the 1e7 rows
    peak = _peak_rss_kib(worker.process.pid)  # type: ignore[union-attr]
    status, body = _post(sql, b"SELECT number, toString(number) AS s FROM numbers(10000000)")
    assert status == 200, body
    assert len(body["rows"]) == 1000 and body["truncated"] is True
    assert body["rows"][-1] == [999, "999"]
    grown_mib = (_peak_rss_kib(worker.process.pid) - peak) / 1024  # type: ignore[union-attr]
    assert grown_mib < 400, f"peak RSS grew by {grown_mib:.0f} MiB for a 1000-row answer"

    # a huge scan is refused up front by the rows-to-read limit
    status, body = _post(sql, b"SELECT count() FROM numbers(400000000000)")
    assert status == 400 and "max_rows_to_read" in body["error"], body

    # adversarial bodies: answered at once (the old regex guard took 8.6 s on 30 KB), and undecodable ones get 400
    for adversarial in ("SELECT '" + "\\'" * 15_000 + "'", "'\\" * 20_000, "SELECT " + "(" * 15_000):
        start = time.monotonic()
        status, body = _post(sql, adversarial.encode())
        elapsed = time.monotonic() - start
        assert status in (200, 400) and elapsed < 5, (status, elapsed)  # a complexity bound, not a speed test
    status, body = _post(sql, b"SELECT '\xff\xfe'")
    assert status == 400 and "UTF-8" in body["error"]
    assert "Traceback" not in worker.output()


def test_heavy_query_is_cut_at_its_time_limit_while_ingest_keeps_writing(make_worker: Any) -> None:
    worker = make_worker("heavy", DRIFTWARDEN_SQL_MAX_EXECUTION_SECONDS="20",
                         DRIFTWARDEN_CHECKPOINT_SECONDS="1").start()
    answer: dict[str, Any] = {}

    def heavy() -> None:
        answer["result"] = _post(worker.url + "/sql",
                                 b"SELECT count() FROM numbers(500000000) WHERE NOT ignore(SHA256(toString(number)))")
        answer["ended"] = time.monotonic()

    query = threading.Thread(target=heavy)
    query.start()
    scenario = Scenario(seed=3, start_ms=int(time.time() * 1000) - 60_000)
    predictions = scenario.predictions(600, rate_per_s=50)
    labels = {g["prediction_id"]: g for g in scenario.all_labels()}

    async def produce(part: list[dict[str, Any]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=worker.runtime()["bootstrap_servers"], linger_ms=5)
        await producer.start()
        try:
            for p in part:
                await producer.send("predictions", orjson.dumps(p), key=p["prediction_id"].encode())
                if p["prediction_id"] in labels:
                    await producer.send("ground_truth", orjson.dumps(labels[p["prediction_id"]]),
                                        key=p["prediction_id"].encode())
            await producer.flush()
        finally:
            await producer.stop()

    # three waves 1.5 s apart: the second's batch makes an ingest checkpoint due (every 1 s), which holds the
    # ingest loop until ClickHouse has it; so the third wave's outcomes prove the engine takes ingest's writes
    # during the heavy query
    joined = 0.0
    for wave in (predictions[:200], predictions[200:400], predictions[400:]):
        before = _metric(worker, "driftwarden_outcomes_total")
        asyncio.run(produce(wave))
        wait_until(lambda before=before: _metric(worker, "driftwarden_outcomes_total") > before, 60, 0.2,  # type: ignore[misc]
                   "outcomes joined while the heavy query runs")
        joined = time.monotonic()
        time.sleep(1.5)  # not a wait for a result: makes the next ingest checkpoint due
    written_at = joined
    status, body = http_json(worker.url + "/readyz")
    assert status == 200, body
    query.join(120)
    status, body = answer["result"]
    assert status == 400 and "Timeout exceeded" in body["error"], body
    # the query ran (in the engine) for its 20 s up to its end; ingest wrote inside that span
    assert answer["ended"] - 20 < written_at < answer["ended"], (answer["ended"] - written_at)


def test_token_guards_data_but_not_probes_and_the_cli_sends_it(make_worker: Any) -> None:
    token = "s3cret-token-for-the-test"
    worker = make_worker("token", DRIFTWARDEN_WEB_TOKEN=token).start()
    for path in ("/healthz", "/readyz"):
        assert http_json(worker.url + path)[0] == 200
    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert token not in metrics
    for given in (None, "wrong", token + "x", ""):
        status, body = _post(worker.url + "/sql", b"SELECT 1", token=given)
        assert status == 401 and "bearer token" in body["error"], (given, status, body)
    status, _ = http_json(worker.url + "/sql?q=SELECT%201")
    assert status == 401
    assert _post(worker.url + "/sql", b"SELECT 1 AS one", token=token) == (
        200, {"columns": ["one"], "rows": [[1]], "truncated": False})
    env = dict(worker.env)
    cli = subprocess.run([sys.executable, "-m", "stream.cli", "sql", "SELECT 41 + 1 AS n", "--format", "csv"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and cli.stdout.splitlines() == ["n", "42"], cli.stderr
    env.pop("DRIFTWARDEN_WEB_TOKEN")
    cli = subprocess.run([sys.executable, "-m", "stream.cli", "sql", "SELECT 1"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 2 and "DRIFTWARDEN_WEB_TOKEN" in cli.stderr and "Traceback" not in cli.stderr


def test_non_loopback_bind_without_a_token_is_refused_with_one_line(tmp_path: Path) -> None:
    env = worker_env(tmp_path / "open", DRIFTWARDEN_WEB_HOST="0.0.0.0")
    result = subprocess.run([sys.executable, "-m", "stream.cli", "up"], env=env, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "DRIFTWARDEN_WEB_TOKEN" in lines[0] and "0.0.0.0" in lines[0]


def test_slow_and_surplus_clients_are_disconnected_without_tracebacks(make_worker: Any) -> None:
    worker = make_worker("slow", DRIFTWARDEN_WEB_READ_TIMEOUT_SECONDS="2", DRIFTWARDEN_WEB_MAX_CONNECTIONS="20").start()
    port = int(worker.env["DRIFTWARDEN_WEB_PORT"])
    slow = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"POST /sql HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        slow.append(s)

    def closed(s: socket.socket) -> bool:
        try:
            s.settimeout(0.05)
            return s.recv(1) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    try:
        wait_until(lambda: all(closed(s) for s in slow), 30, 0.2, "slow clients to be disconnected")
        assert http_json(worker.url + "/healthz")[0] == 200  # the server still serves
    finally:
        for s in slow:
            s.close()
    log = worker.output()
    assert "Traceback" not in log
    assert log.count("read_timeout") <= 1 and log.count("too_many_connections") <= 1, log[-2000:]


@pytest.fixture(autouse=True)
def _reset_recorder() -> None:
    _Recorder.hits = []



_PLANT = """
import sys, datetime, pickle, os
import clickhouse_connect
path, marker = sys.argv[1], sys.argv[2]

class Plant:
    def __reduce__(self):
        return (os.system, ("touch " + marker,))

client = clickhouse_connect.get_client(dsn="chdb://" + path)
payload = pickle.dumps({"monitors": Plant()})
rows = [(stage, p, '{"outcomes": 0}', payload, 2**64 - 1, datetime.datetime.now(datetime.UTC))
        for stage in ("aggregate", "ingest") for p in range(4)]
client.insert("checkpoints", rows, column_names=["stage", "partition", "offsets", "state", "version", "saved_at"],
              database="driftwarden")
client.close()
"""


def test_a_planted_pickle_checkpoint_never_executes(make_worker: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    worker = make_worker("plant").start()
    assert worker.stop() == 0
    planted = subprocess.run([sys.executable, "-c", _PLANT, str(worker.data_dir / "clickhouse"), str(marker)],
                             capture_output=True, text=True, timeout=120)
    assert planted.returncode == 0, planted.stderr
    worker.start()
    scenario = Scenario(seed=5, start_ms=int(time.time() * 1000) - 60_000)
    predictions = scenario.predictions(200, rate_per_s=50)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=worker.runtime()["bootstrap_servers"], linger_ms=5)
        await producer.start()
        try:
            for p in predictions:
                await producer.send("predictions", orjson.dumps(p), key=p["prediction_id"].encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    wait_until(lambda: "aggregate partition" in worker.output() and "old pickle checkpoint" in worker.output(), 90,
               0.2, "the planted aggregate checkpoint to be refused")
    assert "ingest partition" in worker.output()
    assert not marker.exists()
    assert worker.ready()
    assert "Traceback" not in worker.output()
