"""Weights by URL or hub reference: downloaded once into the cache, checksums, atomic writes, clear errors.

A local HTTP server on 127.0.0.1 and file:// URLs stand in for the internet; a fake ``huggingface_hub``
module stands in for the hub.
"""

from __future__ import annotations

import hashlib
import http.server
import sys
import threading
import types
from pathlib import Path

import pytest
import torch

import offnet
from offnet import hub
from offnet._optional import MissingDependency
from offnet.cli import main
from offnet.hub import DownloadError, HubRef, parse_hf_ref, resolve_weights

torch.set_num_threads(1)


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        if self.path.startswith("/short/"):  # announces more bytes than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path):
    """``(base_url, served folder, request log)`` of an HTTP server on 127.0.0.1."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = type("Handler", (_Handler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder, handler.requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("OFFNET_CACHE", str(folder))
    return folder


def _weights(path: Path, seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    state = offnet.create_model("tsn", num_classes=2, backbone="tiny").backbone.state_dict()
    torch.save(state, path)
    return path, state


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_url_is_downloaded_once_and_loads(server, cache):
    base, folder, requests = server
    _, state = _weights(folder / "tiny.pth")
    url = f"{base}/tiny.pth"
    model = offnet.create_model("off", num_classes=3, backbone="tiny", pretrained=url)
    torch.testing.assert_close(model.backbone.state_dict()["stem.0.0.weight"], state["stem.0.0.weight"])
    again = resolve_weights(url)
    assert requests == ["/tiny.pth"]  # the second use reads the cache
    assert again.parent.parent == cache / "weights" and again.name == "tiny.pth"
    record = again.with_name("tiny.pth.sha256").read_text().split()
    assert record == [_sha(folder / "tiny.pth"), url]


def test_sha256_suffix_is_checked_and_a_bad_download_is_not_kept(server, cache):
    base, folder, requests = server
    path, _ = _weights(folder / "w.pth")
    good = f"{base}/w.pth#sha256={_sha(path)}"
    assert resolve_weights(good).read_bytes() == path.read_bytes()
    wrong = f"{base}/other.pth#sha256={'0' * 64}"
    _weights(folder / "other.pth", seed=1)
    with pytest.raises(DownloadError, match=r"other.pth, but its SHA-256 is [0-9a-f]{64}, not the expected 0{64}"):
        resolve_weights(wrong)
    assert _files(cache) == ["w.pth", "w.pth.sha256"]  # nothing of the refused file, no temporary file


def test_a_damaged_cached_file_is_downloaded_again(server, cache):
    base, folder, requests = server
    path, _ = _weights(folder / "w.pth")
    local = resolve_weights(f"{base}/w.pth")
    local.write_bytes(b"half a file")
    assert resolve_weights(f"{base}/w.pth").read_bytes() == path.read_bytes()
    assert requests == ["/w.pth", "/w.pth"]


def test_file_urls_and_local_paths(tmp_path, cache):
    path, _ = _weights(tmp_path / "local.pth")
    assert resolve_weights(str(path)) == path and resolve_weights(path) == path  # local files are used in place
    fetched = resolve_weights(path.as_uri())
    assert fetched != path and fetched.read_bytes() == path.read_bytes() and cache in fetched.parents
    with pytest.raises(DownloadError, match="cannot download file:///.*missing.pth"):
        resolve_weights((tmp_path / "missing.pth").as_uri())


def test_http_errors_and_broken_transfers_are_named(server, cache):
    base, _, _ = server
    with pytest.raises(DownloadError, match=r"cannot download .*/nothing.pth: HTTP 404"):
        resolve_weights(f"{base}/nothing.pth")
    with pytest.raises(DownloadError, match=r"/short/w.pth: the transfer broke off after 100 of 100000 bytes"):
        resolve_weights(f"{base}/short/w.pth")
    assert _files(cache) == []


def test_cli_reports_download_failures_in_one_line(server, cache, capsys):
    base, folder, _ = server
    _weights(folder / "w.pth")
    assert main(["weights", "check", f"{base}/w.pth", "--backbone", "tiny"]) == 0
    assert "OK: the file loads completely" in capsys.readouterr().out
    assert main(["weights", "check", f"{base}/gone.pth", "--backbone", "tiny"]) == 1
    assert "offnet: error: cannot download" in capsys.readouterr().err


@pytest.mark.parametrize("ref, message", [
    ("https://example.org/w.pth#md5=abc", "the part after '#' must be sha256=<64 hex digits>"),
    ("https://example.org/w.pth#sha256=1234", "the part after '#' must be sha256=<64 hex digits>"),
    ("hf-hub:onlyowner", r"expected hf-hub:owner/repo\[@revision\]\[/path/in/repo\]"),
    ("hf-hub:owner/repo/../secret", "must not contain empty, '.' or '..' parts"),
    ("hf-hub:owner/repo@/w.pth", "a revision is written owner/repo@revision"),
])
def test_malformed_references(ref, message, cache):
    with pytest.raises(ValueError, match=message):
        resolve_weights(ref)


@pytest.mark.parametrize("ref, expected", [
    ("hf-hub:timm/resnet50.a1_in1k", HubRef("timm/resnet50.a1_in1k", "pytorch_model.bin")),
    ("hf-hub:me/off-weights/stage3/best.pth", HubRef("me/off-weights", "stage3/best.pth")),
    ("hf-hub:me/off-weights@v1.0/w.pth", HubRef("me/off-weights", "w.pth", "v1.0")),
])
def test_hub_references(ref, expected):
    assert parse_hf_ref(ref) == expected


def test_hub_download_goes_through_huggingface_hub_into_the_cache(tmp_path, cache, monkeypatch):
    path, state = _weights(tmp_path / "downloaded.bin")
    calls = []

    def hf_hub_download(*, repo_id, filename, revision=None, cache_dir=None):
        calls.append(dict(repo_id=repo_id, filename=filename, revision=revision, cache_dir=cache_dir))
        return str(path)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    model = offnet.create_model("tsn", num_classes=2, backbone="tiny", pretrained="hf-hub:me/tiny@main/w.bin")
    torch.testing.assert_close(model.backbone.state_dict()["stem.0.0.weight"], state["stem.0.0.weight"])
    assert calls == [dict(repo_id="me/tiny", filename="w.bin", revision="main", cache_dir=str(cache / "hf"))]
    assert resolve_weights(f"hf-hub:me/tiny#sha256={_sha(path)}") == path
    with pytest.raises(DownloadError, match="hf-hub:me/tiny: its SHA-256 is"):
        resolve_weights(f"hf-hub:me/tiny#sha256={'f' * 64}")


def test_hub_errors_are_named(cache, monkeypatch):
    def hf_hub_download(**kwargs):
        raise OSError("404 Client Error: Repository Not Found")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    with pytest.raises(DownloadError, match=r"cannot fetch pytorch_model.bin from the Hugging Face Hub repository "
                                            r"me/none \(hf-hub:me/none\): OSError: 404"):
        resolve_weights("hf-hub:me/none")


def test_hub_without_huggingface_hub_says_how_to_install(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(MissingDependency, match=r"needs the optional package 'huggingface_hub'.*offnet\[hub\]"):
        resolve_weights("hf-hub:me/tiny")


def test_torch_hub_file_names_carry_their_checksum(server, cache, monkeypatch):
    assert hub._name_hash("https://download.pytorch.org/models/resnet50-0676ba61.pth") == "0676ba61"
    assert hub._name_hash("https://example.org/models/resnet50-0676ba61.pth") is None  # only where it is the rule
    base, folder, _ = server
    monkeypatch.setattr(hub, "_NAME_HASH_HOSTS", ("127.0.0.1",))
    path, _ = _weights(folder / "w.pth")
    (folder / f"w-{_sha(path)[:8]}.pth").write_bytes(path.read_bytes())
    (folder / "w-deadbeef.pth").write_bytes(path.read_bytes())
    assert resolve_weights(f"{base}/w-{_sha(path)[:8]}.pth").is_file()
    with pytest.raises(DownloadError, match="does not start with deadbeef, the digits in its file name"):
        resolve_weights(f"{base}/w-deadbeef.pth")


def test_default_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("OFFNET_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub.cache_dir() == tmp_path / ".cache" / "offnet"
    monkeypatch.setenv("OFFNET_CACHE", "~/weights")
    assert hub.cache_dir() == tmp_path / "weights"
