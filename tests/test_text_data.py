"""The stdlib byte corpus: deterministic, capped, hashed, split without overlap."""
import pytest

from nncompress.data import load_text, stdlib_corpus, stdlib_files


def test_deterministic_capped_and_sorted():
    a, names = stdlib_corpus(5000)
    b, _ = stdlib_corpus(5000)
    assert a == b and len(a) == 5000
    files = [p.name for p in stdlib_files()]
    assert files == sorted(files) and names == files[: len(names)]
    assert a.startswith(stdlib_files()[0].read_bytes()[:100])


def test_splits_are_contiguous_disjoint_and_hashed():
    s = load_text(20_000, 16)
    n = 20_000 // 17
    assert len(s.train) + len(s.val) + len(s.test) == n
    assert (s.train.x[:, 1:] == s.train.y[:, :-1]).all()
    assert s.config()["sha256"] != load_text(19_000, 16).config()["sha256"]
    assert int(s.train.x.max()) < 256


def test_bad_parameters():
    with pytest.raises(ValueError, match="context"):
        load_text(1000, 0)
    with pytest.raises(ValueError, match="too few"):
        load_text(30, 16)
