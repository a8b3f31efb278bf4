"""Child process for measure #6: how long `import function_app` takes, against importing its dependencies alone.

`python -m bench.probes.imports app` imports function_app and prints the seconds plus every module it loaded
that is not the project's own (in load order). `python -m bench.probes.imports deps FILE` imports exactly
those modules (listed in FILE, one per line) and prints the seconds, then the seconds `import function_app`
takes once they are loaded (our own modules' code alone, and whatever it triggers).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

OWN = ("function_app", "service", "agent_core", "bench")


def own(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in OWN)


def main() -> None:
    mode = sys.argv[1]
    names = Path(sys.argv[2]).read_text().split() if mode == "deps" else []
    before = set(sys.modules)
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "app":
        import function_app

        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        new = [name for name in sys.modules if name not in before]
        loaded = [name for name in new if not own(name)]
        print(
            json.dumps(
                {"seconds": seconds, "cpu_seconds": cpu, "modules": loaded, "own_modules": len(new) - len(loaded)}
            )
        )
        return
    failed = 0
    for name in names:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # aliases some packages register in sys.modules cannot be imported by name
                failed += 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    import function_app  # noqa: F401  (its dependencies are loaded: this is our own code alone)

    then_app = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "modules": len(names),
                "failed": failed,
                "then_app_seconds": then_app,
            }
        )
    )


if __name__ == "__main__":
    main()
