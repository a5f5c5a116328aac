"""The lab's two deliverables in one line, after `make repro`'s full `dvc metrics show`."""

import json
import sys


def main(path="metrics/eval.json") -> int:
    m = json.load(open(path))
    tr, te, base = m["train"], m["test"], m.get("baselines", {})
    print(f"Lab 2B, Task 4: train L1 = {tr['l1']:.4e}, test L1 = {te['l1']:.4e} (mean absolute error); "
          f"the lab's L1 (sum over a recording): train {tr['l1_sum']:.4f}, test {te['l1_sum']:.4f}")
    if base:
        others = ", ".join(f"{name} {b['l1']:.4e}" for name, b in base.items())
        print(f"test L1 of the baselines: {others}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
