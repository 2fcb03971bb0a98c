"""workbench.data.tokenizer: deterministic training, save/load, exact segment round trips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.config import PoolSizes
from workbench.data.pools import MONTHS, Pools
from workbench.data.templates import ATTRIBUTES, TEMPLATES
from workbench.data.tokenizer import BOS, PAD, BiographyTokenizer, template_pieces, train_tokenizer


@pytest.fixture(scope="module")
def small():
    pools = Pools.from_sizes(
        PoolSizes(first_names=40, last_names=40, cities=30, universities=10, majors=10, companies=20, years=10)
    )
    return pools, train_tokenizer(pools, ATTRIBUTES, 25, 600)


def test_training_is_deterministic(small):
    pools, tok = small
    again = train_tokenizer(pools, ATTRIBUTES, 25, 600)
    assert again == tok
    assert again.to_json() == tok.to_json()
    text = " Ada Mary Lovelace was born in Paris on March 16, 2042."
    assert again.encode_segment(text) == tok.encode_segment(text)


def test_training_is_deterministic_across_processes(small):
    # hash-map iteration order differs between processes; the trained tokenizer must not
    pools, tok = small
    code = (
        "from workbench.config import PoolSizes\n"
        "from workbench.data.pools import Pools\n"
        "from workbench.data.templates import ATTRIBUTES\n"
        "from workbench.data.tokenizer import train_tokenizer\n"
        "p = Pools.from_sizes(PoolSizes(first_names=40, last_names=40, cities=30, universities=10, majors=10,"
        " companies=20, years=10))\n"
        "print(train_tokenizer(p, ATTRIBUTES, 25, 600).to_json())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == json.loads(tok.to_json())


def test_different_corpus_gives_different_tokenizer(small):
    pools, tok = small
    assert train_tokenizer(pools, ATTRIBUTES, 25, 700) != tok
    assert train_tokenizer(pools, ("major",), 25, 600) != tok


def test_special_tokens(small):
    _, tok = small
    assert tok.pad_id is not None and tok.bos_id is not None and tok.pad_id != tok.bos_id
    assert tok.tokenizer.id_to_token(tok.pad_id) == PAD
    assert tok.tokenizer.id_to_token(tok.bos_id) == BOS
    # no ordinary text ever encodes to a special token
    ids = tok.encode_segment(" " + " ".join(TEMPLATES["company"]))
    assert tok.pad_id not in ids and tok.bos_id not in ids


def test_vocab_size(small, tiny_data):
    _, tok = small
    assert 258 <= tok.vocab_size <= 600  # 256 bytes + 2 specials at least
    assert 258 <= tiny_data.tokenizer.vocab_size <= tiny_data.config.data.vocab_size
    ids = tok.encode_segment(" " + " ".join(TEMPLATES["birth_city"]))
    assert max(ids) < tok.vocab_size


def test_save_load_round_trip(small, tmp_path):
    _, tok = small
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    assert not (tmp_path / "tokenizer.json.tmp").exists()
    loaded = BiographyTokenizer.load(path)
    assert loaded == tok
    assert (loaded.pad_id, loaded.bos_id, loaded.vocab_size) == (tok.pad_id, tok.bos_id, tok.vocab_size)
    for s in (" Sao Paulo", " March 16, 2042", " works for", ".", " Ada Mary Lovelace"):
        assert loaded.encode_segment(s) == tok.encode_segment(s)
    ids = tok.encode_segment(" Ada was born on March 16, 2042.")
    assert loaded.decode(ids) == tok.decode(ids)


def test_load_bad_file_raises(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer"):
        BiographyTokenizer.load(bad)


def test_equality_is_by_content(small):
    _, tok = small
    assert tok != "tokenizer"
    assert BiographyTokenizer(tok.tokenizer) == tok


@pytest.mark.parametrize("vocab", [512, 4096])
def test_every_pool_value_round_trips(vocab):
    pools = Pools.from_sizes(PoolSizes())
    tok = train_tokenizer(pools, ATTRIBUTES, 25, vocab)
    segments = [
        " " + v
        for v in pools.first_names
        + pools.last_names
        + pools.cities
        + pools.universities
        + pools.majors
        + pools.companies
        + MONTHS
        + pools.years
    ]
    segments += [f" {d}" for d in range(1, 32)] + [","]
    for s in segments:
        assert tok.decode(tok.encode_segment(s)) == s


def test_template_pieces_round_trip(small):
    _, tok = small
    for a in ATTRIBUTES:
        for t in TEMPLATES[a]:
            for p in template_pieces(t):
                if p:
                    assert tok.decode(tok.encode_segment(p)) == p


def test_concatenated_segments_decode_to_concatenated_text(small):
    # byte-level decoding: splicing token lists splices text, which makes the biographies' text exact
    _, tok = small
    parts = [" The birth date of", " Ada", " Mary", " Lovelace", " is", " March", " 16", ",", " 2042", "."]
    ids = [i for p in parts for i in tok.encode_segment(p)]
    assert tok.decode(ids) == "".join(parts)


def test_unseen_text_still_round_trips(small):
    # byte-level BPE: any text (accents, emoji) round-trips, so no pool value can become <unk>
    _, tok = small
    for s in (" Zürich", " São Paulo", " 東京", " naïve café ☕"):
        assert tok.decode(tok.encode_segment(s)) == s


def test_encode_segment_cache_returns_same_ids(small):
    _, tok = small
    a = tok.encode_segment(" Tokyo")
    b = tok.encode_segment(" Tokyo")
    assert a == b == tok.tokenizer.encode(" Tokyo", add_special_tokens=False).ids


def test_token_strings(small):
    _, tok = small
    ids = tok.encode_segment(" Ada was born.")
    assert "".join(tok.token_strings(ids)) == " Ada was born."
    assert len(tok.token_strings(ids)) == len(ids)
