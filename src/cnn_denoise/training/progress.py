"""Training's progress where a person can see it: tqdm's bar on a terminal, lines in a log.

tqdm draws nothing when stderr is not a terminal (DVC's queue logs, `make recipe > log`, a
job scheduler), so a long training was silent there until it ended. Then this writes a line
when an epoch ends, at most one a minute (the first and the last epoch always), and a line a
minute within an epoch that takes longer: what a log needs to tell running from stuck.
"""

import sys
import time

from tqdm import tqdm

EVERY = 60.0  # seconds between lines in a log


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


class Progress:
    """`for epoch in Progress(epochs, quiet)`: a bar on a terminal, else lines (neither if quiet)."""

    def __init__(self, epochs: int, quiet: bool = False, stream=None, every: float | None = None):
        self.stream = stream or sys.stderr
        self.epochs, self.every = epochs, EVERY if every is None else every
        self.log = not quiet and not getattr(self.stream, "isatty", lambda: False)()
        # None: tqdm's own test (a terminal); lines instead in a log, nothing when quiet
        disable = True if quiet or self.log else None
        self.bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", file=self.stream, disable=disable)
        self.start = self.last = time.monotonic()
        self.epoch = 0

    def __iter__(self):
        for epoch in self.bar:
            self.epoch = epoch
            yield epoch

    def _say(self, text: str) -> None:
        self.last = time.monotonic()
        print(f"train: {text}, {_clock(self.last - self.start)} so far", file=self.stream, flush=True)

    def batch(self, done: int, total: int) -> None:
        """A batch of the current epoch finished (a line only in a log, a minute after the last)."""
        if self.log and total > 1 and done < total and time.monotonic() - self.last >= self.every:
            self._say(f"epoch {self.epoch}/{self.epochs}, batch {done}/{total}")

    def ended(self, row: dict) -> None:
        """The current epoch ended with the history row `row` (train_l1, test_l1)."""
        losses = f"train L1 {row['train_l1']:.3e}, test L1 {row['test_l1']:.3e}"
        self.bar.set_postfix(train_l1=f"{row['train_l1']:.3e}", test_l1=f"{row['test_l1']:.3e}")
        now = time.monotonic()
        if not self.log or not (self.epoch in (1, self.epochs) or now - self.last >= self.every):
            return
        left = (now - self.start) / self.epoch * (self.epochs - self.epoch)
        self._say(f"epoch {self.epoch}/{self.epochs}, {losses}" + (f", about {_clock(left)} left" if left else ""))
