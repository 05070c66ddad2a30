"""The memory planner: checked against lifetimes computed here from the step list, not by the planner."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import shared_model
from helpers import chain_model, make
from tinyedge.boards import get_board
from tinyedge.codegen.target import specialize
from tinyedge.model import load_model, read_model_bytes
from tinyedge.model.memplan import inplace_inputs, plan_memory, plan_naive, scratch_key, tail_inplace
from tinyedge.model.program import build_program

pytestmark = pytest.mark.unit

#: TFLM's minimum arena for KWS on the host interpreter (tinyedge.oracle.min_arena_bytes).
KWS_TFLM_ARENA = 24272


def check_plan(program, plan) -> list[str]:
    """Every pair of buffers live at the same step must not share bytes, except an in-place step's
    input and output where that input is read by no later step. Returns the problems found."""
    g = program.graph
    n = len(program.steps)
    root = program.root
    produced = {root(program.input): -1}
    last_use: dict[int, int] = {root(program.input): -1}
    for i, s in enumerate(program.steps):
        for t in s.outputs:
            produced.setdefault(root(t), i)
            last_use[root(t)] = max(last_use.get(root(t), i), i)
        for t in s.inputs:
            last_use[root(t)] = max(last_use.get(root(t), -1), i)
    last_use[root(program.output)] = n
    size = {}
    for t in range(len(g.tensors)):
        if root(t) in produced and not g.tensor(t).is_const:
            size[root(t)] = max(size.get(root(t), 0), g.tensor(t).nbytes)
    problems = []
    for i in range(-1, n + 1):
        live = [(r, plan.offset(program, r), size[r]) for r in produced if produced[r] <= i <= last_use[r]]
        if 0 <= i < n and program.steps[i].scratch:
            live.append((scratch_key(i), plan.scratch_offset(i), program.steps[i].scratch))
        for a in range(len(live)):
            for b in range(a + 1, len(live)):
                (ra, oa, sa), (rb, ob, sb) = live[a], live[b]
                if oa < ob + sb and ob < oa + sa:
                    s = program.steps[i] if 0 <= i < n else None
                    pair = {ra, rb}
                    ok = s is not None and any(pair == {root(s.inputs[k]), root(s.outputs[0])}
                                               and last_use[root(s.inputs[k])] == i
                                               for k in inplace_inputs(program, s))
                    if s is not None and tail_inplace(program, s) and pair == {root(s.inputs[0]), root(s.outputs[0])}:
                        # an output grown over its input: legal only with the input at the output's very end
                        xi, yo = root(s.inputs[0]), root(s.outputs[0])
                        ok = (last_use[xi] == i and plan.offset(program, xi) + size[xi]
                              == plan.offset(program, yo) + size[yo])
                    if not ok:
                        problems.append(f"step {i}: buffers {ra} [{oa}, {oa + sa}) and {rb} [{ob}, {ob + sb}) overlap")
        for r, o, sz in live:
            if o < 0 or o + sz > plan.arena_bytes:
                problems.append(f"step {i}: buffer {r} [{o}, {o + sz}) is outside the {plan.arena_bytes}-byte arena")
    return problems


def programs():
    board = get_board("qemu-mps2-an386")
    out = []
    for kind, seed in [("conv", 1), ("dwconv", 3), ("fc", 2), ("reshape", 0), ("softmax", 1)]:
        model, desc = make(kind, seed)
        out.append((desc, build_program(read_model_bytes(model, name=kind))))
    for seed in range(4):
        model, desc = chain_model(seed)
        out.append((desc, build_program(read_model_bytes(model, name="chain"))))
    return [(d + f" [{v}]", specialize(p, board) if v == "dsp" else p) for d, p in out for v in ("portable", "dsp")]


@pytest.mark.parametrize("desc,program", programs(), ids=lambda x: x if isinstance(x, str) else "")
def test_plans_are_valid_and_greedy_beats_naive(desc, program):
    plan = plan_memory(program)
    naive = plan_naive(program)
    assert check_plan(program, plan) == [], desc
    assert check_plan(program, naive) == [], desc
    assert plan.arena_bytes <= naive.arena_bytes
    assert plan.arena_bytes >= plan.lower_bound


def test_inplace_only_where_the_input_dies():
    """A chain whose depthwise input is also read later must not be computed in place."""
    model, _ = chain_model(1)
    program = specialize(build_program(read_model_bytes(model, name="chain")), get_board("qemu-mps2-an386"))
    plan = plan_memory(program)
    assert plan.inplace, "the DSP chain has in-place steps"
    # make the depthwise step's input live on: pretend the next step reads it too
    dw = next(i for i, s in enumerate(program.steps) if "dwconv" in s.kernel)
    program.steps[dw + 1].inputs.append(program.steps[dw].inputs[0])
    plan2 = plan_memory(program)
    dst = program.root(program.steps[dw].outputs[0])
    assert dst not in plan2.inplace
    assert check_plan(program, plan2) == []
    for dst, _src in plan.inplace.items():
        step = next(s for s in program.steps if program.root(s.outputs[0]) == dst)
        assert step.inplace


def test_kws_plans():
    graph = load_model(shared_model("kws_ref_model.tflite"))
    portable = build_program(graph)
    dsp = specialize(portable, get_board("qemu-mps2-an386"))
    p_plan, d_plan = plan_memory(portable), plan_memory(dsp)
    assert check_plan(portable, p_plan) == [] and check_plan(dsp, d_plan) == []
    assert p_plan.arena_bytes == p_plan.lower_bound == 16000  # input + output of the 25x5x64 layers
    assert d_plan.arena_bytes <= 0.6 * KWS_TFLM_ARENA  # in-place pointwise/depthwise + small scratch
    assert plan_naive(dsp).arena_bytes > d_plan.arena_bytes


def test_checker_catches_an_overlapping_plan():
    model, _ = chain_model(0)
    program = build_program(read_model_bytes(model, name="chain"))
    plan = plan_memory(program)
    broken = dataclasses.replace(plan, buffers={k: dataclasses.replace(b, offset=0) for k, b in plan.buffers.items()})
    assert check_plan(program, broken)
