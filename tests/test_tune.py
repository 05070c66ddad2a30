"""Per-layer auto-tuning (``tinyedge generate --tune``): the choice rule with stand-in measurements (unit),
and the real thing in QEMU (slow): same choices and counts twice, never slower than the heuristic, a
second generate served from the cache without QEMU, ``inspect --board`` showing why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tinyedge.tune as tune_mod
from helpers import chain_model
from tinyedge.boards import get_board
from tinyedge.cli import cli
from tinyedge.codegen.target import model_candidates
from tinyedge.errors import BoardError
from tinyedge.firmware import generate_project
from tinyedge.model import load_model, read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.tune import lookup, tune, tuning_board

BOARD = "qemu-mps2-an386"


def _model(tmp_path: Path) -> Path:
    path = tmp_path / "chain.tflite"
    path.write_bytes(chain_model(0)[0])  # CONV_2D, DEPTHWISE_CONV_2D, 1x1 CONV_2D, FULLY_CONNECTED: 2 kernels each
    return path


def _two_candidates(monkeypatch, rename: bool = False) -> None:
    """Every layer with a DSP kernel gets exactly two candidates, the heuristic's (named ``dsp`` when
    ``rename``) and portable: whatever variants the target grows, the tests keep to two rounds of builds."""
    real = tune_mod.model_candidates

    def two(program, board):
        out = []
        for found in real(program, board):
            name, first = next(iter(found.items()))
            out.append({"dsp" if rename else name: first, "portable": found["portable"]})
        return out
    monkeypatch.setattr(tune_mod, "model_candidates", two)


def _fake_profile(table: dict[tuple[int, str], int], calls: list[dict[int, str]], context: int = 0):
    """A stand-in for profile_layers: counts from ``table``; a mix no measured round had costs ``context`` more."""

    def profile(graph, board, choices, project, core_dir=None):
        calls.append(dict(choices))
        extra = context if len(calls) > 2 else 0
        return [table[(i, v)] + (extra if v != "dsp" else 0) for i, v in sorted(choices.items())]
    return profile


@pytest.mark.unit
def test_choice_rule_fastest_ties_to_heuristic_and_cache(tmp_path, monkeypatch):
    g = read_model_bytes(chain_model(0)[0], name="chain")
    _two_candidates(monkeypatch, rename=True)
    # counts come in clock ticks of 40 instructions; step 0: portable two ticks faster (taken); step 1: a tie;
    # step 2: portable one tick faster (within the resolution: the heuristic's stays); step 3: dsp faster
    table = {(0, "dsp"): 400, (0, "portable"): 320, (1, "dsp"): 200, (1, "portable"): 200,
             (2, "dsp"): 120, (2, "portable"): 80, (3, "dsp"): 40, (3, "portable"): 80}
    calls: list[dict[int, str]] = []
    monkeypatch.setattr(tune_mod, "profile_layers", _fake_profile(table, calls))
    r = tune(g, BOARD, cache=tmp_path / "cache", workdir=tmp_path / "w")
    assert r.choices == {0: "portable", 1: "dsp", 2: "dsp", 3: "dsp"}
    # two rounds (every layer's 1st, then 2nd candidate), then one build of the chosen mix to check it
    assert calls == [{i: "dsp" for i in range(4)}, {i: "portable" for i in range(4)},
                     {0: "portable", 1: "dsp", 2: "dsp", 3: "dsp"}]
    assert r.qemu_runs == 3 and r.layers[0].tuned_instructions == 320
    assert r.why[0] == "tuned in QEMU on cortex-m4: portable 320 < dsp (heuristic) 400 instructions"
    assert r.why[1] == "tuned in QEMU on cortex-m4: dsp (heuristic) 200 = portable 200 instructions"
    assert r.why[2].endswith("dsp kept: portable leads by less than two clock ticks (80 instructions), "
                             "within what one measurement resolves")
    # the cache answers the second time: nothing measured, same choices
    calls.clear()
    again = tune(g, BOARD, cache=tmp_path / "cache", workdir=tmp_path / "w")
    assert (calls, again.qemu_runs, again.choices) == ([], 0, r.choices)
    assert again.why[0].startswith("tuned in QEMU on cortex-m4 (cached): portable 320 < dsp")
    found = lookup(g, BOARD, cache=tmp_path / "cache")
    assert found is not None and found.choices == r.choices
    # --retune measures again whatever the cache holds
    fresh = tune(g, BOARD, cache=tmp_path / "cache", workdir=tmp_path / "w", remeasure=True)
    assert fresh.qemu_runs == 3 and len(calls) == 3 and fresh.choices == r.choices


@pytest.mark.unit
def test_a_choice_slower_in_the_tuned_firmware_goes_back_to_the_heuristic(tmp_path, monkeypatch):
    g = read_model_bytes(chain_model(0)[0], name="chain")
    _two_candidates(monkeypatch, rename=True)
    table = {(0, "dsp"): 400, (0, "portable"): 320, (1, "dsp"): 200, (1, "portable"): 320,
             (2, "dsp"): 80, (2, "portable"): 120, (3, "dsp"): 40, (3, "portable"): 80}
    calls: list[dict[int, str]] = []
    monkeypatch.setattr(tune_mod, "profile_layers", _fake_profile(table, calls, context=80))
    r = tune(g, BOARD, cache=tmp_path / "cache", workdir=tmp_path / "w")
    assert r.choices[0] == "dsp" and "back to dsp" in r.notes[0]
    assert all(t.instructions[t.choice] <= t.instructions[t.default] for t in r.layers)


@pytest.mark.unit
def test_boards_without_an_emulator_tune_on_a_twin_or_say_what_to_do():
    assert tuning_board(get_board("nucleo_l4r5zi")).id == "qemu-mps2-an386"  # Cortex-M4 with DSP and FPU
    assert tuning_board(get_board(BOARD)).id == BOARD
    with pytest.raises(BoardError) as exc:
        tuning_board(get_board("esp32-s3-devkitc-1"))
    assert "generate without --tune" in exc.value.hint


@pytest.mark.unit
def test_choices_reach_the_project_manifest(tmp_path):
    model = _model(tmp_path)
    p = generate_project(model, BOARD, tmp_path / "proj", choices={1: "portable"}, why={1: "tuned: because"})
    manifest = json.loads((tmp_path / "proj" / "tinyedge.json").read_text())
    assert manifest["tuned"] is True
    rows = manifest["variants"]
    heuristic = [next(iter(f)) for f in model_candidates(build_program(load_model(model)), get_board(BOARD))]
    assert [r["variant"] for r in rows] == [heuristic[0], "portable"] + heuristic[2:]
    assert rows[1]["why"] == "tuned: because" and rows[1]["kernel"] == "te_dwconv2d_s8"
    assert rows[0]["why"] and p.program.steps[1].variant == "portable"


@pytest.mark.slow
def test_tune_in_qemu_repeatable_never_slower_and_cached(tmp_path, pio_core, monkeypatch):
    monkeypatch.setenv("TINYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_core))
    _two_candidates(monkeypatch)  # two rounds of builds, plus one to re-measure
    model = _model(tmp_path)
    graph = load_model(model)
    work = tmp_path / "tune-work"  # one project for every round: the rebuilds recompile the model only
    first = tune(graph, BOARD, core_dir=pio_core, workdir=work)
    assert first.qemu_runs >= 2 and not first.notes
    for t in first.layers:
        assert set(t.instructions) == set(t.candidates)  # every candidate measured, the heuristic's too
        assert t.instructions[t.choice] == min(t.instructions.values())
        assert t.instructions[t.choice] <= t.instructions[t.default]
        assert t.tuned_instructions is None or t.tuned_instructions <= t.instructions[t.default]
    # the tuned firmware measured afresh: the very same counts
    again = tune_mod.profile_layers(graph, get_board(BOARD), first.choices, work, pio_core)
    assert again == [t.tuned_instructions for t in first.layers]

    # the CLI's second generate comes from the cache: no build, no QEMU
    def no_qemu(*args, **kwargs):
        raise AssertionError("generate --tune measured although the cache has every layer")
    monkeypatch.setattr(tune_mod, "profile_layers", no_qemu)
    out = tmp_path / "proj"
    res = CliRunner().invoke(cli, ["generate", str(model), "--board", BOARD, "-o", str(out), "--tune"])
    assert res.exit_code == 0, res.output
    assert "from the cache, no QEMU run" in res.output
    manifest = json.loads((out / "tinyedge.json").read_text())
    assert manifest["tuned"] is True
    assert {r["step"]: r["variant"] for r in manifest["variants"]} == first.choices
    assert all(r["why"].startswith("tuned in QEMU on cortex-m4 (cached)") for r in manifest["variants"])

    res = CliRunner().invoke(cli, ["inspect", str(model), "--board", BOARD, "--no-tflm"])
    assert res.exit_code == 0, res.output
    assert "tuned choices from the tuning cache" in res.output
    for t in first.layers:
        assert f"{t.instructions[t.default]:,}" in res.output

    # `run --tune` deploys the same choices (from the cache) and the tuned firmware scores at parity 1
    x = np.random.default_rng(0).normal(size=(6,) + tuple(graph.input.shape[1:])).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=np.zeros(len(x), dtype=np.int64))
    res = CliRunner().invoke(cli, ["run", str(model), "--board", BOARD, "--data", str(tmp_path / "data.npz"),
                                   "-o", str(tmp_path / "run"), "--tune", "--slo", "parity==1"])
    assert res.exit_code == 0, res.output
    assert "from the cache, no QEMU run" in res.output
    manifest = json.loads((tmp_path / "run" / "project" / "tinyedge.json").read_text())
    assert {r["step"]: r["variant"] for r in manifest["variants"]} == first.choices


@pytest.mark.unit
def test_speed_never_costs_ram(monkeypatch):
    # "fast" needs a larger arena on its own; "fast2" and "fast3" each fit, but not together
    def arena(program, board, choices):
        return (1024 + 1024 * (choices.get(0) == "fast")
                + 512 * (choices.get(1) == "fast2" and choices.get(2) == "fast3"))
    monkeypatch.setattr(tune_mod, "_arena", arena)
    names = [["dsp", "fast"], ["dsp", "fast2"], ["dsp", "fast3"], ["dsp"]]
    measured = [{"dsp": 400, "fast": 200}, {"dsp": 400, "fast2": 200}, {"dsp": 400, "fast3": 300}, {"dsp": 40}]
    choice, refused = tune_mod._choose(None, None, names, measured, {}, 40)
    assert choice == {0: "dsp", 1: "fast2", 2: "dsp", 3: "dsp"}  # fast3 gains less than fast2: it goes back
    assert refused == {0: "fast refused: its scratch makes the arena 2,048 B, the heuristic's kernels need 1,024 B",
                       2: "fast3 refused: with the other choices it makes the arena larger than the heuristic's "
                          "1,024 B"}
