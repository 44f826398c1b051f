"""Random programs that the kernel's verifier accepts (ALU/ALU64, forward JMP/JMP32, loads,
stores and atomics on the stack and a map value, on initialised registers): the kernel's
BPF_PROG_TEST_RUN and the interpreter leave the same retval, context and map bytes.
``python -m bpfmap._vm_random --count 100000 --seed 1`` runs the long batch."""

from __future__ import annotations

import pytest
from conftest import require_kernel

from bpfmap import _vm_random

# 3,000 programs loaded into the kernel: with the stress family, out of -m "not stress"
pytestmark = pytest.mark.stress


@pytest.mark.parametrize("first", range(1, 3001, 500))
def test_random_programs_like_the_kernel(first: int) -> None:
    require_kernel()
    verdicts = [_vm_random.check(seed) for seed in range(first, first + 500)]
    diverged = [v for v in verdicts if v.status == "diverged"]
    assert not diverged, "\n".join(f"seed {v.seed}: {v.detail}" for v in diverged[:3])
    # the generator makes programs the verifier accepts: a rejection is a generator bug
    assert [v for v in verdicts if v.status == "rejected"] == []


def test_generator_is_deterministic_and_covers_every_class() -> None:
    code = b"".join(_vm_random.generate(seed) for seed in range(200))
    assert _vm_random.generate(7) == _vm_random.generate(7)
    classes = {op & 0x07 for op in code[::8]}
    assert classes == set(range(8))  # LD (ld_imm64), LDX, ST, STX, ALU, JMP, JMP32, ALU64
    atomics = {code[i + 4] for i in range(0, len(code), 8) if code[i] & 0xE7 == 0xC3}
    assert atomics == {0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, 0xE1, 0xF1}
    calls = [i for i in range(0, len(code), 8) if code[i] == 0x85 and code[i + 1] == 0x10]
    assert len(calls) > 50  # bpf-to-bpf calls into a subprogram


def test_cli_reports_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    require_kernel()
    assert _vm_random.main(["--count", "20", "--seed", "5"]) == 0
    assert "20 programs from seed 5: 20 same" in capsys.readouterr().out
    assert _vm_random.main(["--seed", "9", "--replay", _vm_random.generate(9).hex()]) == 0
    assert capsys.readouterr().out == "same\n"
