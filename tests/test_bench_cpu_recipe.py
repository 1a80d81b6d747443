"""bench/cpu_recipe.py --confirm, the command behind the CPU hour's row in BENCHMARKS.md, at toy size:
it runs a preset as it is through the pipeline's own pretrain and linear_eval and prints one row."""

from support import ROOT, prepared_project, run


def test_confirm_runs_a_preset_and_prints_its_row(tmp_path):
    repo = prepared_project(tmp_path / "p", epochs=1, warmup_epochs=0, knn_every=0)
    proc = run(["python", str(ROOT / "bench/cpu_recipe.py"), "--prepared", str(repo / "data/prepared"),
                "--confirm", str(repo / "params.yaml")], ROOT, timeout=300)
    header, _, row = proc.stdout.strip().splitlines()[-3:]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert header.startswith("| date | preset | encoder | epochs | pretrain (min) |")
    assert cells[1] == "`params.yaml`" and cells[2] == "small_cnn w8, no" and cells[3] == "1"
    assert all(0 <= float(c) <= 100 for c in cells[7:11])  # val_top1_h, top1_h, kNN, random init: percentages
    assert row not in (ROOT / "BENCHMARKS.md").read_text()  # printed, not written (no --write)
