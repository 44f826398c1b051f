"""What an emulated pin costs: time to pin and to open, memory, the holder's sweep.

    python benchmarks/pin_cost.py [FOLDER] [COUNT]   (default: $TMPDIR, 10000)

Pins COUNT maps in FOLDER (its filesystem decides much of the pin time: a pin
is a file), with a holder of its own, and prints one line per figure. Kernel
memory is /proc/meminfo's Slab before and after, so other activity on the
machine shows in it; run it on a quiet machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from bpfmap import ArrayMap, _pin


def meminfo(field: str) -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def main() -> None:
    parent = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    os.environ["BPFMAP_PIN_HOLDER"] = f"cost-{os.getpid()}"
    folder = tempfile.mkdtemp(prefix="bpfmap-pin-cost-", dir=parent)
    maps = [ArrayMap(8, 1) for _ in range(count)]
    warm = ArrayMap(8, 1)
    warm.pin(f"{folder}/warm")  # starts the holder: not part of any pin's cost
    name = _pin.holder_name(f"{folder}/warm")
    holder = _pin.holder_pid_of(name)
    # How soon the holder lets go of an unlinked pin's map, without a sweep request
    # (measured while it holds one pin: listing its descriptors is then quick).
    probe = ArrayMap(8, 1)
    probe_id = probe.id
    probe.pin(f"{folder}/probe")
    probe.close()
    os.unlink(f"{folder}/probe")
    t = time.perf_counter()
    while any(os.stat(f"/proc/{holder}/fd/{fd}").st_ino == probe_id
              for fd in os.listdir(f"/proc/{holder}/fd")
              if os.readlink(f"/proc/{holder}/fd/{fd}").startswith("/memfd:bpfmap")):
        time.sleep(0.0005)
    release_s = time.perf_counter() - t
    rss0, slab0 = rss_kib(holder), meminfo("Slab")
    t = time.perf_counter()
    for i, m in enumerate(maps):
        m.pin(f"{folder}/p{i}")
    pin_s = time.perf_counter() - t
    rss1, slab1 = rss_kib(holder), meminfo("Slab")
    standby = int(_pin._request(name, b"ping", [], "ping", os.getuid())[0].split()[4])
    standby_rss = rss_kib(standby) if standby else 0
    t = time.perf_counter()
    for i in range(count):
        ArrayMap.open_pinned(f"{folder}/p{i}").close()
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    for m in maps:
        ArrayMap.from_fd(os.dup(m.fd)).close()
    adopt_s = time.perf_counter() - t
    t = time.perf_counter()
    held = _pin.sweep(name)
    sweep_s = time.perf_counter() - t
    names = {_pin.holder_name(f"{folder}/p{i}") for i in (0, count - 1)}
    total = sum(_pin.sweep(n) for n in names)
    for m in maps:
        m.close()
    for i in range(count):
        os.unlink(f"{folder}/p{i}")
    os.unlink(f"{folder}/warm")
    for n in names:
        _pin.sweep(n)
    os.rmdir(folder)
    fstype = os.popen(f"stat -f -c %T {parent}").read().strip()
    print(f"{count} pins in {parent} ({fstype}): {total} held by {len(names)} holder(s), "
          f"{held} by the first (pid {holder})")
    print(f"pin: {pin_s / count * 1e6:.0f} us each")
    print(f"open_pinned: {open_s / count * 1e6:.0f} us each "
          f"(from_fd alone: {adopt_s / count * 1e6:.0f} us)")
    print(f"holder RSS: +{(rss1 - rss0) * 1024 / count:.0f} bytes per pin ({rss1} KiB in all)")
    print(f"its standby's RSS: {standby_rss} KiB (a forked copy: much of it shared)")
    print(f"kernel Slab: +{(slab1 - slab0) * 1024 / count:.0f} bytes per pin (noisy)")
    print(f"sweep of {held} pins: {sweep_s * 1e3:.1f} ms")
    print(f"an unlinked pin's map let go after {release_s * 1e3:.2f} ms (inotify)")


if __name__ == "__main__":
    main()
