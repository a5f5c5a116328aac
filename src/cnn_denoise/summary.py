"""The lab's two deliverables in one line, after `make repro`'s `dvc metrics show`."""

import json
import sys


def main(path="metrics/eval.json") -> int:
    m = json.load(open(path))
    tr, te, lin = m["train"], m["test"], m.get("linear", {})
    print(
        f"Lab 2B, Task 4: train L1 = {tr['l1']:.4e}, test L1 = {te['l1']:.4e} (mean absolute error); "
        f"the lab's L1 (sum over a recording): train {tr['l1_sum']:.4f}, test {te['l1_sum']:.4f}"
    )
    if lin:
        print(
            f"the least-squares filter to beat: test L1 per recording {lin['l1_sum']:.4f}, SI-SDR "
            f"{lin['si_sdr_db']:.2f} dB "
            "(every baseline: reports/measures.json)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
