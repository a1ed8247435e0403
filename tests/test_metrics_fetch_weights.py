"""`dp3d fetch-weights`: downloads (here from file:// URLs), checks sha256, writes atomically."""

import argparse
import dataclasses
import hashlib

import pytest

from diffportrait3d.cli import fetch_weights as cli
from diffportrait3d.errors import UserError
from diffportrait3d.metrics import weights
from diffportrait3d.metrics.fetch import fetch


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Point two registry entries at local files: one with the right sha256, one with a wrong one."""
    src = tmp_path / "server"
    src.mkdir()
    good, bad = src / "good.bin", src / "bad.bin"
    good.write_bytes(b"x" * 3_000_000)
    bad.write_bytes(b"not the file")
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    reg = dict(weights.REGISTRY)
    reg["alexnet"] = dataclasses.replace(reg["alexnet"], url=good.as_uri(), sha256=digest)
    reg["dists"] = dataclasses.replace(reg["dists"], url=bad.as_uri(), sha256="0" * 64)
    monkeypatch.setattr(weights, "REGISTRY", reg)
    monkeypatch.setattr("diffportrait3d.metrics.fetch.REGISTRY", reg)
    return tmp_path / "weights"


def test_fetch_downloads_and_verifies(served):
    paths = fetch(served, keys=["alexnet"], progress=False)
    assert paths == [served / "alexnet-owt-7be5be79.pth"]
    assert paths[0].stat().st_size == 3_000_000
    assert sorted(p.name for p in served.iterdir()) == ["alexnet-owt-7be5be79.pth"]  # no temp files left
    mtime = paths[0].stat().st_mtime_ns
    fetch(served, keys=["alexnet"], progress=False)  # present and valid: kept
    assert paths[0].stat().st_mtime_ns == mtime


def test_fetch_rejects_a_wrong_file_and_leaves_nothing(served):
    with pytest.raises(UserError, match="sha256"):
        fetch(served, keys=["dists"], progress=False)
    assert not any(served.iterdir())


def test_fetch_reports_unknown_keys_and_unreachable_urls(served, monkeypatch):
    with pytest.raises(UserError, match="unknown weight file"):
        fetch(served, keys=["nope"])
    reg = dict(weights.REGISTRY)
    reg["vgg16"] = dataclasses.replace(reg["vgg16"], url=(served.parent / "missing.bin").as_uri())
    monkeypatch.setattr("diffportrait3d.metrics.fetch.REGISTRY", reg)
    with pytest.raises(UserError, match="cannot download vgg16-397923af.pth"):
        fetch(served, keys=["vgg16"], progress=False)


def test_cli_lists_files(served, capsys):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(), "fetch-weights")
    args = parser.parse_args(["fetch-weights", str(served), "--list"])
    args.func(args)
    out = capsys.readouterr().out
    assert "missing alexnet-owt-7be5be79.pth" in out and "pt_inception-2015-12-05-6726825d.pth" in out
