"""Fleet mode's and shipping's parts that need no cluster: labels, a damaged or hostile fleet.json,
and the bundles of built files (what is shipped, what is laid down, what never leaves the cache
folder). The runs on a real cluster are in test_ray.py."""

from __future__ import annotations

import pytest

from suite.__main__ import main
from suite.errors import SuiteError
from suite.run import shipping
from suite.run.fleet import node_folders, parse_labels


def test_labels_parse_and_bad_ones_are_refused():
    assert parse_labels("") == {} and parse_labels(" , ") == {}
    assert parse_labels("gpu=h200, zone=eu-1") == {"gpu": "h200", "zone": "eu-1"}
    assert parse_labels("ray.io/accelerator-type=H200") == {"ray.io/accelerator-type": "H200"}
    for bad in ("gpu", "=h200", "gpu=", "a b=c", "x=1,y"):
        with pytest.raises(SuiteError, match="is not KEY=VALUE"):
            parse_labels(bad)


@pytest.mark.parametrize("content, says", [
    ("{", "not valid JSON"),
    ("[]", "nodes: expected a list"),
    ('{"nodes": []}', "nodes: expected a list"),
    ('{"nodes": [{"node_id": "a"}]}', "nodes: expected a list"),
    ('{"nodes": [{"folder": 3}]}', "nodes: expected a list"),
    ('{"nodes": [{"folder": "../elsewhere"}]}', "is outside the fleet folder"),
    ('{"nodes": [{"folder": "/etc"}]}', "is outside the fleet folder"),
])
def test_a_damaged_fleet_file_is_a_one_line_error(tmp_path, capsys, content, says):
    (tmp_path / "fleet.json").write_text(content)
    with pytest.raises(SuiteError, match=says):
        node_folders(tmp_path)
    assert main(["run", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0]


def test_on_each_node_is_refused_with_resume_and_without_ray_launcher(write_scenario, run_quick, capsys, tmp_path):
    path = write_scenario("model: {name: mlp, hidden: [8]}\nvariants:\n  - name: fp32\n")
    status, _, err, _ = run_quick(path, "--on-each-node", "--launcher", "subprocess")
    assert status == 2 and "use it with --launcher ray" in err
    status, _, err, _ = run_quick(path, "--on-each-node", "--in-process")
    assert status == 2 and "use it with --launcher ray" in err
    assert main(["run", "--resume", str(tmp_path), "--on-each-node"]) == 2
    assert "--resume FLEET_DIR finishes one without it" in capsys.readouterr().err


def test_a_bundle_holds_what_was_added_and_lands_where_it_is_missing(tmp_path):
    built, other = tmp_path / "built", tmp_path / "other"
    (built / "checkpoints").mkdir(parents=True)
    (built / "checkpoints" / "old.pt").write_bytes(b"old")
    before = shipping.snapshot(built)
    (built / "checkpoints" / "new.pt").write_bytes(b"new weights")
    (built / "onnx").mkdir()
    (built / "onnx" / "m.onnx").write_bytes(b"graph")
    (built / "onnx" / ".m.onnx.123.tmp").write_bytes(b"half written")  # an atomic write under way
    manifest, files = shipping.bundle(built, before)
    assert manifest == {"checkpoints/new.pt": 11, "onnx/m.onnx": 5} and set(files) == set(manifest)

    fetched = []

    def fetch(ref):
        fetched.append(ref)
        return files

    (other / "onnx").mkdir(parents=True)
    (other / "onnx" / "m.onnx").write_bytes(b"graph")  # already there: not written again
    assert shipping.lay_down(other, [(manifest, "ref")], fetch) == 1
    assert (other / "checkpoints" / "new.pt").read_bytes() == b"new weights" and fetched == ["ref"]
    assert shipping.lay_down(other, [(manifest, "ref")], fetch) == 0 and fetched == ["ref"]  # nothing missing: no fetch
    (other / "checkpoints" / "new.pt").write_bytes(b"cut")  # another size: replaced
    assert shipping.lay_down(other, [(manifest, "ref")], fetch) == 1
    assert (other / "checkpoints" / "new.pt").read_bytes() == b"new weights"


def test_a_hostile_manifest_writes_nothing_outside_the_cache_folder(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    files = {"../outside.txt": b"x", "/tmp/absolute.txt": b"y", "ok.txt": b"z"}
    manifest = {rel: len(data) for rel, data in files.items()}
    assert shipping.lay_down(root, [(manifest, None)], lambda ref: files) == 1
    assert not (tmp_path / "outside.txt").exists() and (root / "ok.txt").read_bytes() == b"z"
    assert set(shipping.snapshot(root)) == {"ok.txt"}
