"""Downloads and the model registry, against a local stand-in for the Hugging Face hub.

The stand-in speaks the small part of the hub protocol that ``huggingface_hub``'s public
``hf_hub_download`` uses:
``HEAD``/``GET {endpoint}/{repo_id}/resolve/{revision}/{filename}`` answered with
``X-Repo-Commit`` and ``ETag`` (plus, for the LFS-style checkpoint, a 302 to a separate "CDN"
origin with ``X-Linked-Etag``/``X-Linked-Size``), and ``Range: bytes=N-`` requests answered with
206. It can drop a connection half-way, fail with 503, or send a corrupted body (right length,
wrong sha256). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

import lotlip
from lotlip import registry

NAME = "lotlip-vit-b16"
MODEL_REPO = lotlip.OFFICIAL_MODELS[NAME].repo_id
VOCAB_REPO = lotlip.OFFICIAL_MODELS[NAME].tokenizer_repo
COMMITS = {MODEL_REPO: "a" * 40, VOCAB_REPO: "b" * 40}
RESOLVE = re.compile(r"^/(?P<repo>.+)/resolve/(?P<rev>[^/]+)/(?P<file>[^?]+)$")
LFS = re.compile(r"^/lfs/(?P<sha>[0-9a-f]{64})$")


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    origin: str


@dataclass
class HubState:
    files: dict[tuple[str, str], bytes]
    lfs: set[str]  # filenames served LFS-style (redirect to the CDN origin)
    requests: list[Request] = field(default_factory=list)
    truncate_next_get: bool = False  # next full GET: send half the body, then drop the connection
    outage_after_truncation: bool = True  # then GETs answer 503, so the whole call fails
    outage: bool = False  # GETs answer 503
    corrupt_gets: int = 0  # this many next full GETs send the right length with one byte flipped
    pause_s: float = 0.0  # sleep between 256 KiB pieces of a body (a slow line)
    cdn_base: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def blob(self, sha: str) -> bytes | None:
        for data in self.files.values():
            if hashlib.sha256(data).hexdigest() == sha:
                return data
        return None


def make_handler(state: HubState, origin: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output quiet
            return None

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            with state.lock:
                state.requests.append(
                    Request(self.command, self.path, self.headers.get("Range"), origin)
                )
            resolve = RESOLVE.match(self.path) if origin == "hub" else None
            lfs = LFS.match(self.path) if origin == "cdn" else None
            if resolve:
                key = (resolve["repo"], resolve["file"])
                if key not in state.files:
                    self._empty(404, {"X-Error-Code": "EntryNotFound"})
                    return
                data = state.files[key]
                sha = hashlib.sha256(data).hexdigest()
                commit = COMMITS[resolve["repo"]]
                if resolve["file"] in state.lfs:
                    self._empty(
                        302,
                        {
                            "Location": f"{state.cdn_base}/lfs/{sha}",
                            "X-Repo-Commit": commit,
                            "X-Linked-Etag": f'"{sha}"',
                            "X-Linked-Size": str(len(data)),
                            "ETag": '"pointer-etag"',
                        },
                    )
                    return
                self._body(data, head, {"X-Repo-Commit": commit, "ETag": f'"{sha}"'})
            elif lfs and state.blob(lfs["sha"]) is not None:
                self._body(state.blob(lfs["sha"]), head, {})
            else:
                self._empty(404, {})

        def _empty(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _body(self, data: bytes, head: bool, headers: dict[str, str]) -> None:
            if head:
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                return
            if state.outage:
                self._empty(503, {})
                return
            start = 0
            requested = self.headers.get("Range")
            if requested:
                match = re.fullmatch(r"bytes=(\d+)-", requested)
                assert match, f"unexpected Range header {requested!r}"
                start = int(match[1])
            status = 206 if requested else 200
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if requested:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            payload = data[start:]
            if state.corrupt_gets and not requested and payload:
                state.corrupt_gets -= 1
                payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
            if state.truncate_next_get and not requested:
                state.truncate_next_get = False
                state.outage = state.outage_after_truncation
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if not state.pause_s:
                self.wfile.write(payload)
                return
            for start in range(0, len(payload), 1 << 18):
                self.wfile.write(payload[start : start + (1 << 18)])
                self.wfile.flush()
                time.sleep(state.pause_s)

    return Handler


@dataclass
class FakeHub:
    state: HubState
    endpoint: str
    servers: list[ThreadingHTTPServer]

    def gets(self) -> list[Request]:
        return [r for r in self.state.requests if r.method == "GET"]

    def shutdown(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def start_hub(files: dict[tuple[str, str], bytes], lfs: set[str]) -> FakeHub:
    state = HubState(files=files, lfs=lfs)
    servers = []
    for origin in ("hub", "cdn"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, origin))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    hub_port, cdn_port = (s.server_address[1] for s in servers)
    state.cdn_base = f"http://127.0.0.1:{cdn_port}"
    return FakeHub(state, f"http://127.0.0.1:{hub_port}", servers)


@pytest.fixture
def payload() -> dict[str, bytes]:
    # Larger than two of huggingface_hub's 10 MiB download chunks, so that the truncated first
    # response leaves a partial file behind (bytes still in the chunker are lost on an error).
    rng = np.random.default_rng(0)
    return {
        "model.pt": rng.integers(0, 256, size=24_000_000, dtype=np.uint8).tobytes(),
        "vocab.txt": "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello"]).encode(),
    }


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure requests to 127.0.0.1 are not sent to a proxy."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def hub(payload: dict[str, bytes], no_proxy: None) -> Iterator[FakeHub]:
    files = {
        (MODEL_REPO, "model.pt"): payload["model.pt"],
        (VOCAB_REPO, "vocab.txt"): payload["vocab.txt"],
    }
    server = start_hub(files, lfs={"model.pt"})
    yield server
    server.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- downloads ------------------------------------------------------------------------------------
def test_download_lands_in_cache(hub: FakeHub, payload: dict[str, bytes], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert registry.cached_official_files(NAME, cache) is None

    ckpt, vocab = registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)

    assert ckpt.read_bytes() == payload["model.pt"]
    assert vocab.read_bytes() == payload["vocab.txt"]
    assert cache in ckpt.parents and cache in vocab.parents
    assert registry.cached_official_files(NAME, cache) == (ckpt, vocab)
    # the checkpoint came from the CDN origin the hub redirected to, without a Range request
    cdn_gets = [r for r in hub.gets() if r.origin == "cdn"]
    assert len(cdn_gets) == 1 and cdn_gets[0].range is None

    # a second call finds everything in place and downloads nothing again
    n_gets = len(hub.gets())
    again = registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)
    assert again == (ckpt, vocab)
    assert len(hub.gets()) == n_gets


def test_dropped_connection_resumes_within_the_download(
    hub: FakeHub, payload: dict[str, bytes], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    hub.state.truncate_next_get = True
    hub.state.outage_after_truncation = False  # the connection drops once; the server stays up

    ckpt, _ = registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)

    cdn_gets = [r for r in hub.gets() if r.origin == "cdn"]
    assert len(cdn_gets) == 2
    match = re.fullmatch(r"bytes=(\d+)-", cdn_gets[1].range or "")
    assert match, f"the retry did not resume with a Range request: {cdn_gets[1]}"
    assert 0 < int(match[1]) < len(payload["model.pt"])
    assert ckpt.read_bytes() == payload["model.pt"]


def test_failed_download_leaves_no_partial_file_and_retry_completes(
    hub: FakeHub, payload: dict[str, bytes], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    hub.state.truncate_next_get = True  # drops the connection, then the hub answers 503

    with pytest.raises(lotlip.DownloadError) as info:
        registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)
    assert "again" in str(info.value)  # tells the user what to do
    assert registry.cached_official_files(NAME, cache) is None
    assert [p for p in cache.rglob("*") if p.name.endswith(".incomplete")] == []

    hub.state.outage = False  # the network is back
    ckpt, vocab = registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)
    assert ckpt.read_bytes() == payload["model.pt"]
    assert vocab.read_bytes() == payload["vocab.txt"]


def test_corrupted_download_is_detected_and_fetched_again(
    hub: FakeHub, payload: dict[str, bytes], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    hub.state.corrupt_gets = 1

    ckpt, _ = registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)

    assert ckpt.read_bytes() == payload["model.pt"]
    assert len([r for r in hub.gets() if r.origin == "cdn"]) == 2


def test_corrupted_cache_file_is_detected_and_fetched_again(
    hub: FakeHub, payload: dict[str, bytes], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    ckpt, _ = registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)
    blob = ckpt.resolve()
    blob.chmod(0o644)
    with blob.open("r+b") as fh:  # bit rot: same size, other bytes
        fh.seek(1000)
        fh.write(b"\0" * 16)

    again, _ = registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)

    assert again.read_bytes() == payload["model.pt"]


def test_download_that_stays_corrupt_fails_and_keeps_nothing(hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    hub.state.corrupt_gets = 100

    with pytest.raises(lotlip.DownloadError) as info:
        registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)

    assert "checksum" in str(info.value)
    assert registry.cached_official_files(NAME, cache) is None


class RecordingBar:
    """A tqdm-compatible class that records what the download reported."""

    bars: ClassVar[list[RecordingBar]] = []

    def __init__(self, *args: object, total: int | None = None, initial: int = 0, **kw: object):
        self.total, self.n, self.desc = total, initial, str(kw.get("desc") or "")
        RecordingBar.bars.append(self)

    def update(self, n: int = 1) -> None:
        self.n += n

    def __enter__(self) -> RecordingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


def test_progress_bar_class_sees_every_byte(
    hub: FakeHub, payload: dict[str, bytes], tmp_path: Path
) -> None:
    RecordingBar.bars = []
    registry.download(
        NAME, cache_dir=tmp_path / "cache", endpoint=hub.endpoint, progress_bar=RecordingBar
    )
    checkpoint_bars = [b for b in RecordingBar.bars if b.total == len(payload["model.pt"])]
    assert checkpoint_bars and checkpoint_bars[-1].n == len(payload["model.pt"])


def test_download_uses_only_public_huggingface_hub_api() -> None:
    source = Path(registry.__file__).read_text(encoding="utf-8")
    assert "file_download" not in source and "WeakFileLock" not in source
    assert ".incomplete" not in source and "http_get" not in source


def test_offline_download_explains_manual_install(tmp_path: Path, no_proxy: None) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(lotlip.DownloadError) as info:
        registry.download(NAME, cache_dir=tmp_path / "cache", endpoint=endpoint, progress=False)
    message = str(info.value)
    assert "Could not reach" in message and "model import" in message
    assert registry.OFFICIAL_MODELS[NAME].url in message
    assert time.monotonic() - started < 10  # no minute-long retrying before saying so


def test_download_after_server_shutdown(hub: FakeHub, tmp_path: Path) -> None:
    endpoint = hub.endpoint
    hub.shutdown()
    with pytest.raises(lotlip.DownloadError) as info:
        registry.download(NAME, cache_dir=tmp_path / "cache", endpoint=endpoint, progress=False)
    assert "model import" in str(info.value)


def test_offline_with_a_cached_download_uses_it(
    hub: FakeHub, payload: dict[str, bytes], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = registry.download(NAME, cache_dir=cache, endpoint=hub.endpoint, progress=False)
    endpoint = hub.endpoint
    hub.shutdown()
    again = registry.download(NAME, cache_dir=cache, endpoint=endpoint, progress=False)
    assert again == first and again[0].read_bytes() == payload["model.pt"]


def test_unknown_name_is_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(lotlip.ModelNotFoundError):
        registry.download("lotlip-vit-h14", cache_dir=tmp_path, endpoint="http://127.0.0.1:9")


# -- registry without downloads -------------------------------------------------------------------
def test_load_uninstalled_official_model_explains(isolated_model_homes: dict[str, Path]) -> None:
    assert not registry.is_installed(NAME)
    with pytest.raises(lotlip.ModelNotFoundError) as info:
        lotlip.load(NAME, device="cpu")
    message = str(info.value)
    assert f"model download {NAME}" in message
    assert "model import" in message


def test_load_unknown_name_lists_known_models(isolated_model_homes: dict[str, Path]) -> None:
    with pytest.raises(lotlip.ModelNotFoundError) as info:
        lotlip.load("no-such-model", device="cpu")
    assert NAME in str(info.value)


def test_import_official_then_load_by_name(
    isolated_model_homes: dict[str, Path],
    small_official_checkpoint: Path,
    bert_vocab_file: Path,
    make_image,
) -> None:
    target = registry.import_official(small_official_checkpoint, vocab=bert_vocab_file, name="mine")
    assert target == isolated_model_homes["models"] / "mine"
    assert registry.is_installed("mine")
    kinds = {m.name: m.kind for m in registry.installed_models()}
    assert kinds["mine"] == "imported"
    with pytest.raises(FileExistsError):
        registry.import_official(small_official_checkpoint, vocab=bert_vocab_file, name="mine")

    by_name = lotlip.load("mine", device="cpu")
    direct = lotlip.load(small_official_checkpoint, device="cpu", vocab=bert_vocab_file)
    assert by_name.name == "mine"
    texts = ["a dog on the grass", "a red car parked near a house. two windows"]
    images = [make_image(40, 32, seed=1), make_image(32, 50, seed=2)]
    np.testing.assert_array_equal(by_name.embed_texts(texts), direct.embed_texts(texts))
    np.testing.assert_array_equal(by_name.embed_images(images), direct.embed_images(images))
    assert torch.equal(by_name.logit_scale, direct.logit_scale)

    registry.remove_model("mine")
    assert not registry.is_installed("mine")
    assert not os.path.exists(target)


def test_download_then_load_by_name_offline(
    isolated_model_homes: dict[str, Path],
    small_official_checkpoint: Path,
    bert_vocab_file: Path,
    no_proxy: None,
) -> None:
    """End to end: download into the default cache, then ``lotlip.load(name)`` with no server."""
    files = {
        (MODEL_REPO, "model.pt"): small_official_checkpoint.read_bytes(),
        (VOCAB_REPO, "vocab.txt"): bert_vocab_file.read_bytes(),
    }
    server = start_hub(files, lfs={"model.pt"})
    try:
        ckpt, _ = registry.download(NAME, endpoint=server.endpoint, progress=False)
    finally:
        server.shutdown()
    assert isolated_model_homes["hub_cache"] in ckpt.parents
    assert registry.is_installed(NAME)

    model = lotlip.load(NAME, device="cpu")
    direct = lotlip.load(small_official_checkpoint, device="cpu", vocab=bert_vocab_file)
    assert model.name == NAME
    texts = ["a dog on the grass"]
    np.testing.assert_array_equal(model.embed_texts(texts), direct.embed_texts(texts))


def test_installed_folder_is_known_by_its_installed_name(
    isolated_model_homes: dict[str, Path], make_tiny_model
) -> None:
    """A model folder copied in under another name (the GUI's folder import) is that name."""
    make_tiny_model().save(isolated_model_homes["models"] / "holiday")  # saved as lotlip-test
    assert lotlip.load("holiday", device="cpu").name == "holiday"
    assert [m.name for m in registry.installed_models() if m.kind != "bundled"] == ["holiday"]
