"""Lightning's output during the package's fits: tips dropped, quiet levels restored."""

import logging
import warnings

from clinical_mborl.core.lightning_logs import lightning_output


def test_tips_are_dropped_inside_the_block_only(caplog):
    log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger="pytorch_lightning"):
        with lightning_output(quiet=False):
            log.info("💡 Tip: For seamless cloud logging, try installing a cloud logger")
            log.info("GPU available: False, used: False")
        log.info("💡 Tip: outside the block")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False",
                                                         "💡 Tip: outside the block"]


def test_quiet_sets_and_restores_levels_and_ignores_only_irrelevant_warnings():
    lg = logging.getLogger("lightning_fabric")
    before = lg.level
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with lightning_output(quiet=True, level=logging.ERROR):
            assert lg.level == logging.ERROR
            warnings.warn("The 'train_dataloader' does not have many workers which may be a bottleneck.", stacklevel=1)
            warnings.warn("something the user must see", stacklevel=1)
    assert lg.level == before
    assert [str(w.message) for w in caught] == ["something the user must see"]
