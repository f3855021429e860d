"""The file backend's checkpoint journal belongs to the claim that wrote it (issue 13 item 2).

A process keeps its journal open between saves. When its claim ends, another
process may delete or reset the consumer (removing the journal); a later
claim in the first process must not go on appending to the removed file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import ConsumerBusy
from eventstore.filelog import FileLog, checkpoints
from eventstore.filelog.paths import Layout
from tests.helpers import run_child


def test_item2_journal_of_an_ended_claim_is_not_written_to(tmp_path: Path) -> None:
    log = FileLog(Layout.of("show", tmp_path))
    with log.claim("j"):
        log.save_checkpoint("j", b'{"n":1}')
        log.save_checkpoint("j", b'{"n":2}', durable=False)  # opens the journal
        journal = checkpoints.consumer_dir(log.layout) / "j.journal"
        with pytest.raises(ConsumerBusy), log.claim("j"):
            pass
        assert str(journal) in checkpoints._journals  # a refused claim leaves the holder's
    assert log.load_checkpoint("j") == b'{"n":2}'
    # Another process deletes the consumer while nobody watches it
    # (`scenelog consumers delete`): the .json and the journal are removed.
    child = run_child(
        """
        import sys
        from pathlib import Path
        from eventstore.filelog import FileLog
        from eventstore.filelog.paths import Layout
        log = FileLog(Layout.of("show", Path(sys.argv[1])))
        with log.claim("j"):
            assert log.delete_checkpoint("j")
        """,
        str(tmp_path),
    )
    assert child.returncode == 0, child.stderr
    assert log.load_checkpoint("j") is None
    # This process watches the consumer again: its first save must be kept.
    with log.claim("j"):
        log.save_checkpoint("j", b'{"n":3}', durable=False)
        assert log.load_checkpoint("j") == b'{"n":3}'
    assert log.load_checkpoint("j") == b'{"n":3}'
    assert str(journal) not in checkpoints._journals  # the claim took its journal's fd along
