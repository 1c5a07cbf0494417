"""What Lightning prints during the package's fits (dynamics, policies, FQE): one place to set it.

`lightning_output(quiet)` silences Lightning's info lines when `quiet` (progress bars are each
Trainer's own setting), ignores its warnings that do not apply to these fits (small data in one
process, a reused checkpoint folder, no logger), and always drops its advertising "Tip" lines,
which point an offline workspace to a cloud service. Logging only: this module imports no Lightning.

>>> import logging
>>> with lightning_output(quiet=True):
...     logging.getLogger("pytorch_lightning").level == logging.WARNING
True
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")
# messages Lightning logs through `rank_zero_info` (its logger is a child of "pytorch_lightning")
RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
IRRELEVANT_WARNINGS = (
    ".*does not have many workers.*",  # data loading in this process is deliberate (tiny tensors)
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*GPU available but not used.*",
    ".*is smaller than the logging interval.*",
    ".*treespec.*",  # Lightning against torch's pytree deprecation
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


_TIPS = _DropTips()


@contextmanager
def lightning_output(quiet: bool, level: int = logging.WARNING, all_warnings: bool = False) -> Iterator[None]:
    """Within the block: Lightning's loggers at `level` when `quiet`; its irrelevant warnings (every
    warning when `all_warnings`) ignored; its tips dropped. Restores everything afterwards."""
    loggers = [logging.getLogger(n) for n in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    tip_loggers = [logging.getLogger(n) for n in RANK_ZERO_LOGGERS]
    if quiet:
        for lg in loggers:
            lg.setLevel(level)
    for lg in tip_loggers:
        lg.addFilter(_TIPS)
    try:
        with warnings.catch_warnings():
            if all_warnings:
                warnings.simplefilter("ignore")
            for pattern in IRRELEVANT_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg in tip_loggers:
            lg.removeFilter(_TIPS)
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)
