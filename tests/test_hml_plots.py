"""HML appendix figures: frequency ordering, layer grouping and weighting, stage-report
loading and its errors, the PNG files, and the plot_hml CLI with its skip behaviour."""
import json
import logging
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from hml_patch.plots import (
    frequency_order,
    importance_per_layer_figure,
    layer_importance,
    load_stage_reports,
    module_of,
    per_predicate_recall_figure,
    plot_importance_per_layer,
    plot_per_predicate_recall,
    predicate_stages,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["above", "has", "on", "wearing", "near"]
COUNTS = {"above": 50, "has": 300, "on": 900, "wearing": 300, "near": 10, "__background__": 10 ** 6}


def fake_metrics(recalls, names=NAMES, images=None):
    """The parts of a relation evaluation's metrics.json the plots read."""
    mean = sum(recalls) / len(recalls)
    return {"metrics": {"R@K": {"100": 0.5}, "mR@K": {"100": mean}},
            "per_predicate": {"names": list(names), "mR": {"20": recalls, "50": recalls, "100": list(recalls)},
                              "images_per_predicate": images or [3] * len(names)}}


def fake_report(stage, scale=1.0, numel=True):
    def entry(fisher, omega, n):
        out = {"fisher": fisher * scale, "omega": omega * scale}
        if numel:
            out["numel"] = n
        return out
    return {"stage": stage, "train_predicate_counts": {k: v for k, v in COUNTS.items() if k != "__background__"},
            "stage_predicates": ["on", "has", "near"] if stage == 1 else ["above", "wearing"],
            "parameter_importance": {
                "context_layer.obj_ctx_rnn.weight_ih_l0": entry(1.0, 0.2, 12),
                "context_layer.obj_ctx_rnn.weight_hh_l0_reverse": entry(3.0, 0.4, 12),
                "post_emb.weight": entry(0.5, 0.9, 6),
                "rel_compress.weight": entry(2.0, 0.1, 9),
                "rel_compress.bias": entry(6.0, 0.5, 3)}}


def write_run(run_dir: Path, reports):
    for report in reports:
        folder = run_dir / f"stage{report['stage']}"
        folder.mkdir(parents=True)
        (folder / "stage_report.json").write_text(json.dumps(report))


def png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    return struct.unpack(">II", data[16:24])


def test_frequency_order_descending_ties_in_id_order():
    assert frequency_order(NAMES, COUNTS) == ["on", "has", "wearing", "above", "near"]
    # names missing from the counts count 0 and keep their id order at the end
    assert frequency_order(["x", "on", "y", "near"], COUNTS) == ["on", "near", "x", "y"]
    assert frequency_order(["b", "a"], {"a": 1, "b": 1}) == ["b", "a"]


def test_module_of_groups_recurrent_and_plain_parameters():
    assert module_of("context_layer.obj_ctx_rnn.weight_ih_l0") == "context_layer.obj_ctx_rnn"
    assert module_of("context_layer.obj_ctx_rnn.bias_hh_l1_reverse") == "context_layer.obj_ctx_rnn"
    assert module_of("post_emb.weight") == "post_emb"
    assert module_of("rel_compress.bias") == "rel_compress"
    assert module_of("head.proj.parametrizations.weight.original0") == "head.proj"
    assert module_of("logit_scale") == ""


def test_layer_importance_weights_by_numel_when_every_entry_has_it():
    layers = layer_importance(fake_report(1)["parameter_importance"])
    assert list(layers) == ["context_layer.obj_ctx_rnn", "post_emb", "rel_compress"]
    assert layers["rel_compress"]["fisher"] == pytest.approx((2.0 * 9 + 6.0 * 3) / 12)
    assert layers["rel_compress"]["omega"] == pytest.approx((0.1 * 9 + 0.5 * 3) / 12)
    assert layers["context_layer.obj_ctx_rnn"]["fisher"] == pytest.approx(2.0)
    unweighted = layer_importance(fake_report(1, numel=False)["parameter_importance"])
    assert unweighted["rel_compress"]["fisher"] == pytest.approx(4.0)
    mixed = fake_report(1)["parameter_importance"]
    del mixed["rel_compress.bias"]["numel"]
    assert layer_importance(mixed)["rel_compress"]["fisher"] == pytest.approx(4.0)
    assert layer_importance(mixed)["post_emb"]["fisher"] == pytest.approx(0.5)


def test_load_stage_reports_sorted_and_errors_name_the_file(tmp_path):
    write_run(tmp_path / "run", [fake_report(10), fake_report(2), fake_report(1)])
    (tmp_path / "run" / "stage3").mkdir()  # a stage still training: no report yet
    assert [r["stage"] for r in load_stage_reports(str(tmp_path / "run"))] == [1, 2, 10]
    assert load_stage_reports(str(tmp_path)) == []
    with pytest.raises(FileNotFoundError):
        load_stage_reports(str(tmp_path / "missing"))

    bad = fake_report(2)
    del bad["parameter_importance"]["post_emb.weight"]["omega"]
    write_run(tmp_path / "bad", [fake_report(1), bad])
    path = str(tmp_path / "bad" / "stage2" / "stage_report.json")
    with pytest.raises(ValueError, match=f"{path}.*post_emb.weight"):
        load_stage_reports(str(tmp_path / "bad"))
    Path(path).write_text("{not json")
    with pytest.raises(ValueError, match=f"{path}: not valid JSON"):
        load_stage_reports(str(tmp_path / "bad"))
    Path(path).write_text(json.dumps(fake_report(1)))
    with pytest.raises(ValueError, match=f"{path}: reports stage 1 but lies in folder stage2"):
        load_stage_reports(str(tmp_path / "bad"))
    no_stage = fake_report(2)
    del no_stage["stage_predicates"]
    Path(path).write_text(json.dumps(no_stage))
    with pytest.raises(ValueError, match=f"{path}: missing stage_predicates"):
        load_stage_reports(str(tmp_path / "bad"))


def test_recall_figure_orders_by_frequency_and_labels_runs():
    runs = {"CE": fake_metrics([0.1, 0.2, 0.9, 0.0, 0.3], images=[3, 3, 3, 0, 3]),
            "HML": fake_metrics([0.5, 0.6, 0.4, 0.3, 0.2], images=[3, 3, 3, 0, 3]),
            "CB": fake_metrics([0.4, 0.4, 0.4, 0.4, 0.4])}
    figure = per_predicate_recall_figure(runs, COUNTS, stages=predicate_stages([fake_report(1), fake_report(2)]))
    axes = figure.axes[0]
    # 'wearing' has no test image in CE and HML but has one in CB: not starred
    assert [t.get_text() for t in axes.get_xticklabels()] == ["on", "has", "wearing", "above", "near"]
    bars = axes.containers
    assert len(bars) == 3
    assert [b.get_height() for b in bars[0]] == pytest.approx([90, 20, 0, 10, 30])
    assert [b.get_height() for b in bars[1]] == pytest.approx([40, 60, 30, 50, 20])
    run_legend, stage_legend = ([t.get_text() for t in legend.get_texts()] for legend in figure.legends)
    assert run_legend == ["CE (mR@100 = 30.00)", "HML (mR@100 = 40.00)", "CB (mR@100 = 40.00)"]
    assert stage_legend == ["stage 1", "stage 2"]
    colours = {t.get_text(): t.get_color() for t in axes.get_xticklabels()}
    assert colours["on"] == colours["has"] != colours["wearing"]

    two = {k: runs[k] for k in ("CE", "HML")}
    starred = per_predicate_recall_figure(two, COUNTS).axes[0]
    assert [t.get_text() for t in starred.get_xticklabels()][2] == "wearing*"


def test_recall_figure_rejects_mismatched_runs_and_counts():
    other = fake_metrics([0.1, 0.2], names=["on", "under"])
    with pytest.raises(ValueError, match="'CE' and 'X' evaluate different predicates"):
        per_predicate_recall_figure({"CE": fake_metrics([0.1] * 5), "X": other}, COUNTS)
    with pytest.raises(ValueError, match="name none"):
        per_predicate_recall_figure({"CE": fake_metrics([0.1] * 5)}, {"under": 3})
    with pytest.raises(ValueError, match="run 'CE'"):
        per_predicate_recall_figure({"CE": {"metrics": {}}}, COUNTS)


def test_importance_figure_layers_stages_and_log_scale():
    figure = importance_per_layer_figure([fake_report(1), fake_report(2, scale=2.0)])
    fisher, omega = figure.axes
    assert [t.get_text() for t in omega.get_xticklabels()] == ["context_layer.obj_ctx_rnn", "post_emb",
                                                                "rel_compress"]
    assert len(fisher.containers) == 2
    assert [b.get_height() for b in fisher.containers[1]] == pytest.approx([4.0, 1.0, 6.0])
    assert fisher.get_yscale() == "linear"
    spread = fake_report(1)
    spread["parameter_importance"]["post_emb.weight"]["fisher"] = 1e-8
    spread["parameter_importance"]["new_layer.weight"] = {"fisher": 1.0, "omega": 0.5}
    figure = importance_per_layer_figure([fake_report(2), spread])
    assert figure.axes[0].get_yscale() == "log" and figure.axes[1].get_yscale() == "linear"
    assert [t.get_text() for t in figure.axes[1].get_xticklabels()][-1] == "new_layer"


def test_pngs_are_valid_and_grow_with_content(tmp_path):
    runs = {"CE": fake_metrics([0.1, 0.2, 0.9, 0.0, 0.3])}
    small = plot_per_predicate_recall(runs, COUNTS, str(tmp_path / "a" / "recall.png"))
    many = [f"p{i}" for i in range(40)]
    big = plot_per_predicate_recall({"CE": fake_metrics([0.5] * 40, names=many), "HML": fake_metrics(
        [0.2] * 40, names=many)}, {n: i for i, n in enumerate(many)}, str(tmp_path / "b" / "recall.png"))
    assert png_size(big)[0] > png_size(small)[0]
    out = plot_importance_per_layer([fake_report(1), fake_report(2)], str(tmp_path / "a" / "importance.png"))
    assert out == str(tmp_path / "a" / "importance.png")
    png_size(out)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["importance.png", "recall.png"]


def test_module_leaves_no_pyplot_state():
    code = ("import sys; from hml_patch import plots; "
            "plots.importance_per_layer_figure([{'stage': 1, 'train_predicate_counts': {}, 'stage_predicates': [], "
            "'parameter_importance': {'a.weight': {'fisher': 1.0, 'omega': 0.5}}}]); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO_ROOT))


@pytest.fixture
def plot_hml(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "tools"))
    import plot_hml as module
    yield module
    del sys.modules["plot_hml"]


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_end_to_end_and_skips(plot_hml, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    run_dir = tmp_path / "run"
    write_run(run_dir, [fake_report(1), fake_report(2)])
    for label, recalls in (("ce", [0.1, 0.2, 0.9, 0.0, 0.3]), ("hml", [0.5, 0.6, 0.4, 0.3, 0.2])):
        (tmp_path / f"{label}.json").write_text(json.dumps(fake_metrics(recalls)))
    runs = ["--run", f"CE={tmp_path / 'ce.json'}", "--run", f"HML={tmp_path / 'hml.json'}"]

    out = tmp_path / "out"
    assert plot_hml.main(["--run-dir", str(run_dir), *runs, "--out", str(out)]) == 0
    result = last_json(capsys)
    assert result == {"per_predicate_recall": str(out / "per_predicate_recall.png"),
                      "importance_per_layer": str(out / "importance_per_layer.png")}
    for path in result.values():
        png_size(path)

    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps(COUNTS))
    assert plot_hml.main([*runs, "--counts", str(counts), "--out", str(tmp_path / "o2")]) == 0
    assert last_json(capsys) == {"per_predicate_recall": str(tmp_path / "o2" / "per_predicate_recall.png"),
                                 "importance_per_layer": None}
    assert "skipping importance_per_layer.png" in caplog.text

    caplog.clear()
    assert plot_hml.main([*runs, "--out", str(tmp_path / "o3")]) == 0
    assert last_json(capsys) == {"per_predicate_recall": None, "importance_per_layer": None}
    assert "skipping per_predicate_recall.png: no training counts" in caplog.text
    assert not (tmp_path / "o3").exists()

    assert plot_hml.main(["--run-dir", str(run_dir), "--out", str(tmp_path / "o4")]) == 0
    assert last_json(capsys) == {"per_predicate_recall": None,
                                 "importance_per_layer": str(tmp_path / "o4" / "importance_per_layer.png")}

    caplog.clear()
    (run_dir / "stage2" / "stage_report.json").write_text("[]")
    assert plot_hml.main(["--run-dir", str(run_dir), *runs, "--out", str(out)]) == 2
    assert f"{run_dir / 'stage2' / 'stage_report.json'}: a stage report must be a JSON object" in caplog.text
    assert capsys.readouterr().out == ""
    assert plot_hml.main(["--run", "no-equals-sign", "--out", str(out)]) == 2
    assert plot_hml.main(["--run", f"CE={tmp_path / 'missing.json'}", "--out", str(out)]) == 2
    with pytest.raises(SystemExit):
        plot_hml.main(["--out", str(out)])
