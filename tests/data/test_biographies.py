"""workbench.data.biographies: spliced tokens, exact text, labels, template splits in batches."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from workbench.data.batch import Batch
from workbench.data.biographies import Biographer
from workbench.data.kinds import BOS, NAME, PAD, TEXT, VALUE
from workbench.data.pools import split_date
from workbench.data.templates import TEMPLATES

N_TRAIN_BATCHES = 60  # x 16 biographies (tiny preset)


@pytest.fixture(scope="module")
def train_batches(tiny_data):
    return [tiny_data.train_batch(step) for step in range(N_TRAIN_BATCHES)]


@pytest.fixture(scope="module")
def parsed_train(tiny_data, train_batches, parser_for):
    parser = parser_for(tiny_data)
    return [(b, r, parser.row(b, r)) for b in train_batches for r in range(len(b))]


def _filled(data, individual, sentence):
    a = data.config.data.attributes[sentence.attribute]
    d = data.population.describe(individual)
    return TEMPLATES[a][sentence.template].format(name=d["name"], value=d[a])


# ---- values and names decode exactly ----------------------------------------------------------


def test_every_pool_value_decodes_exactly(full_pool_data):
    bio, pools, tok = full_pool_data.biographer, full_pool_data.population.pools, full_pool_data.tokenizer
    for j, a in enumerate(full_pool_data.config.data.attributes):
        if a == "birth_date":
            assert bio.values[j] is None
            continue
        pool_values = [pools.value(a, v) for v in range(pools.n_values(a))]
        assert len(bio.values[j]) == len(pool_values)
        for ids, v in zip(bio.values[j], pool_values):
            assert tok.decode(ids) == " " + v
    for ids, v in zip(bio.first, pools.first_names):
        assert tok.decode(ids) == " " + v
    for ids, v in zip(bio.last, pools.last_names):
        assert tok.decode(ids) == " " + v


def test_every_date_decodes_exactly(full_pool_data):
    population, tok = full_pool_data.population, full_pool_data.tokenizer
    j = population.config.attributes.index("birth_date")
    n_dates = population.pools.n_values("birth_date")
    values = np.zeros((n_dates, len(population.config.attributes)), dtype=np.int32)
    values[:, j] = np.arange(n_dates)
    bio = Biographer(dataclasses.replace(population, values=values), tok)
    comma = tok.encode_segment(",")
    for idx in range(n_dates):
        ids = bio.value_tokens(idx, j)
        assert tok.decode(ids) == " " + population.pools.value("birth_date", idx)
        y, m, d = split_date(idx)
        # the comma is its own splice: it never merges with the day or the year
        assert ids == bio.month[m] + bio.day[d] + comma + bio.year[y]


def test_value_tokens_are_the_value_encoded_alone(full_pool_data):
    bio, population, tok = full_pool_data.biographer, full_pool_data.population, full_pool_data.tokenizer
    for i in range(0, len(population.names), 7):
        d = population.describe(i)
        for j, a in enumerate(population.config.attributes):
            ids = bio.value_tokens(i, j)
            assert tok.decode(ids) == " " + d[a]
            if a != "birth_date":
                assert ids == tok.encode_segment(" " + d[a])


def test_name_tokens_decode_to_full_name(full_pool_data):
    bio, population, tok = full_pool_data.biographer, full_pool_data.population, full_pool_data.tokenizer
    for i in range(len(population.names)):
        assert tok.decode(bio.name_tokens(i)) == " " + population.full_name(i)


# ---- text ---------------------------------------------------------------------------------------


def test_decoded_text_is_concatenation_of_filled_templates(tiny_data, parsed_train):
    bio = tiny_data.biographer
    for batch, r, sentences in parsed_train:
        ind = int(batch.individuals[r])
        expected = "".join(" " + _filled(tiny_data, ind, s) for s in sentences)
        assert bio.text(batch, r) == expected


def test_each_sentence_decodes_to_its_filled_template(tiny_data, parsed_train):
    tok = tiny_data.tokenizer
    for batch, r, sentences in parsed_train[:200]:
        ind = int(batch.individuals[r])
        name = tiny_data.population.full_name(ind)
        for s in sentences:
            text = tok.decode(s.tokens)
            assert text == " " + _filled(tiny_data, ind, s)
            assert name in text  # the full name is repeated in every sentence
            assert tok.decode(s.name_tokens) == " " + name


def test_values_spliced_not_merged(tiny_data, parsed_train):
    # the value's tokens are exactly the value encoded on its own, whatever follows it
    bio, population = tiny_data.biographer, tiny_data.population
    for batch, r, sentences in parsed_train:
        ind = int(batch.individuals[r])
        for s in sentences:
            assert s.value_tokens == bio.value_tokens(ind, s.attribute)
            assert s.name_tokens == bio.name_tokens(ind)
            assert (
                tiny_data.tokenizer.decode(s.value_tokens)
                == " " + population.describe(ind)[population.config.attributes[s.attribute]]
            )


# ---- labels ------------------------------------------------------------------------------------


def test_labels_align_with_tokens(tiny_data, train_batches, parser_for):
    parser = parser_for(tiny_data)
    n_attr = len(tiny_data.config.data.attributes)
    tok = tiny_data.tokenizer
    for batch in train_batches:
        b, t = batch.tokens.shape
        assert batch.kind.shape == batch.attribute.shape == batch.value_start.shape == (b, t)
        lengths = batch.mask.sum(1)
        assert int(lengths.max()) == t  # padded to the longest biography
        for r in range(b):
            n = int(lengths[r])
            kinds = batch.kind[r].tolist()
            # BOS first, PAD only at the end, PAD tokens carry the pad id
            assert kinds[0] == BOS and batch.tokens[r, 0] == tok.bos_id
            assert BOS not in kinds[1:]
            assert all(k != PAD for k in kinds[:n]) and all(k == PAD for k in kinds[n:])
            assert (batch.tokens[r, n:] == tok.pad_id).all()
            assert tok.pad_id not in batch.tokens[r, :n].tolist()
            # attribute -1 exactly on BOS and PAD
            attrs = batch.attribute[r].tolist()
            assert attrs[0] == -1 and all(a == -1 for a in attrs[n:])
            assert all(0 <= a < n_attr for a in attrs[1:n])
            # six sentences, one per attribute, each with exactly one value (a single VALUE run)
            sentences = parser.row(batch, r)
            assert sorted(s.attribute for s in sentences) == list(range(n_attr))
            for s in sentences:
                value_runs = sum(1 for i, k in enumerate(s.kinds) if k == VALUE and (i == 0 or s.kinds[i - 1] != VALUE))
                name_runs = sum(1 for i, k in enumerate(s.kinds) if k == NAME and (i == 0 or s.kinds[i - 1] != NAME))
                assert value_runs == 1 and name_runs == 1
                assert s.kinds[-1] == TEXT  # the sentence ends in punctuation text
                # value_start marks exactly the first token of the value
                assert s.value_start_positions == [s.first_value_position]
            # value_start: six per biography, only on VALUE tokens
            vs = batch.value_start[r]
            assert int(vs.sum()) == n_attr
            assert (batch.kind[r][vs] == VALUE).all()


def test_label_dtypes(tiny_data, train_batches):
    b = train_batches[0]
    assert b.tokens.dtype == torch.int64 and b.individuals.dtype == torch.int64
    assert b.value_start.dtype == torch.bool
    assert not b.tokens.is_floating_point() and not b.kind.is_floating_point()


# ---- template splits in biographies ------------------------------------------------------------


def test_training_biographies_use_only_training_templates(tiny_data, parsed_train):
    population = tiny_data.population
    seen = 0
    for batch, r, sentences in parsed_train:
        ind = int(batch.individuals[r])
        for s in sentences:
            assert s.template in set(population.training_templates(ind, s.attribute).tolist())
            assert s.template not in set(population.evaluation_templates(ind, s.attribute).tolist())
            seen += 1
    assert seen == N_TRAIN_BATCHES * tiny_data.config.train.batch_size * len(tiny_data.config.data.attributes)


def test_evaluation_biographies_use_only_evaluation_templates(tiny_data, parser_for):
    parser, population = parser_for(tiny_data), tiny_data.population
    for group in ("seen", "heldout", "new"):
        batch = tiny_data.eval_batch(group, size=64)
        assert set(batch.individuals.tolist()) <= set(population.group(group))
        for r in range(len(batch)):
            ind = int(batch.individuals[r])
            for s in parser.row(batch, r):
                assert s.template in set(population.evaluation_templates(ind, s.attribute).tolist())


@pytest.mark.parametrize("split, lo, hi", [("training", 0, 20), ("evaluation", 20, 25)])
def test_one_individual_uses_exactly_its_split_uniformly(tiny_data, parser_for, stats, split, lo, hi):
    parser, population = parser_for(tiny_data), tiny_data.population
    ind = 5
    batch = tiny_data.biographer.batch(np.full(1500, ind), split, np.random.default_rng(0))
    used = {j: Counter() for j in range(6)}
    for r in range(len(batch)):
        for s in parser.row(batch, r):
            used[s.attribute][s.template] += 1
    for j in range(6):
        allowed = population.template_order[ind, j, lo:hi].tolist()
        assert set(used[j]) == set(allowed)
        stats.assert_matches([used[j][t] for t in allowed], np.full(len(allowed), 1 / len(allowed)))


def test_sentence_order_is_shuffled_uniformly(tiny_data, parsed_train, stats):
    # position of each attribute's sentence within the biography: uniform over the six slots
    counts = np.zeros((6, 6), dtype=np.int64)
    for _, _, sentences in parsed_train:
        for pos, s in enumerate(sentences):
            counts[s.attribute, pos] += 1
    for j in range(6):
        stats.assert_matches(counts[j], np.full(6, 1 / 6))


def test_heldout_eval_batch_never_contains_training_individuals(tiny_data):
    batch = tiny_data.eval_batch("heldout", size=100)
    assert not set(batch.individuals.tolist()) & set(tiny_data.population.seen)


def test_eval_batch_is_fixed(tiny_data):
    a, b = tiny_data.eval_batch("seen", size=32), tiny_data.eval_batch("seen", size=32)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.individuals, b.individuals)
    c = tiny_data.eval_batch("seen", size=32, seed_offset=1)
    assert not torch.equal(a.tokens, c.tokens)


# ---- padding, lengths, helpers ------------------------------------------------------------------


def test_lengths_bounded_by_max_length(tiny_data, train_batches):
    bound = tiny_data.max_length
    assert bound == tiny_data.biographer.max_length()
    for batch in train_batches:
        assert int(batch.mask.sum(1).max()) <= bound
    ev = tiny_data.eval_batch("heldout", size=64)
    assert int(ev.mask.sum(1).max()) <= bound


def test_pad_to(tiny_data):
    ids = np.arange(8)
    bio = tiny_data.biographer
    b = bio.batch(ids, "training", np.random.default_rng(1), pad_to=bio.max_length())
    assert b.tokens.shape == (8, bio.max_length())
    same = bio.batch(ids, "training", np.random.default_rng(1))
    n = same.tokens.shape[1]
    assert torch.equal(b.tokens[:, :n], same.tokens) and (b.kind[:, n:] == PAD).all()
    with pytest.raises(ValueError, match="pad_to"):
        bio.batch(ids, "training", np.random.default_rng(1), pad_to=n - 1)


def test_bad_split_raises(tiny_data):
    with pytest.raises(ValueError, match="split"):
        tiny_data.biographer.batch(np.arange(2), "test", np.random.default_rng(0))


def test_batch_helpers(train_batches):
    b = train_batches[0]
    sub = b[2:5]
    assert isinstance(sub, Batch) and len(sub) == 3
    assert torch.equal(sub.tokens, b.tokens[2:5]) and torch.equal(sub.individuals, b.individuals[2:5])
    moved = b.to("cpu")
    assert torch.equal(moved.kind, b.kind) and torch.equal(moved.mask, b.kind != PAD)


def test_marked_text(tiny_data, train_batches):
    bio = tiny_data.biographer
    batch = train_batches[0]
    for r in range(len(batch)):
        ind = int(batch.individuals[r])
        marked = bio.text(batch, r, mark=True)
        d = tiny_data.population.describe(ind)
        assert marked.count(f"[[{d['name']}]]") == 6
        for a in tiny_data.config.data.attributes:
            assert f"<<{d[a]}>>" in marked
        assert marked.count("<<") == marked.count(">>") == 6
        plain = marked.replace("[[", "").replace("]]", "").replace("<<", "").replace(">>", "")
        assert plain == bio.text(batch, r)


def test_token_roles_on_a_hand_checked_biography():
    """name_end_mask / first_name_end / value_query_mask on a biography labelled by hand."""
    import torch

    from workbench.data.batch import Batch
    from workbench.data.kinds import BOS

    # BOS | "X" [Ann Lee] "is from" <Paris> "." | "X" [Ann Lee] "works at" <Ac me> | PAD
    kind = [BOS, TEXT, NAME, NAME, TEXT, VALUE, TEXT, TEXT, NAME, NAME, TEXT, VALUE, VALUE, PAD]
    attr = [-1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1]
    start = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0]
    b = Batch(
        torch.arange(14)[None],
        torch.tensor([kind]),
        torch.tensor([attr]),
        torch.tensor([start]).bool(),
        torch.tensor([0]),
    )
    assert b.name_mask[0].nonzero()[:, 0].tolist() == [2, 3, 8, 9]
    assert b.name_end_mask[0].nonzero()[:, 0].tolist() == [3, 9]
    assert b.first_name_end.tolist() == [3]
    assert b.value_query_mask[0].nonzero()[:, 0].tolist() == [4, 10]
    assert b.value_query_positions(2).tolist() == [[4, 10]]


def test_name_partner_is_the_one_corruption_rule(tiny_data):
    bio, seen = tiny_data.biographer, tiny_data.population.seen
    for ind in range(10):
        partner = bio.name_partner(ind, seen, seed=0)
        assert partner is not None and partner != ind
        a, b = bio.name_tokens(ind), bio.name_tokens(partner)
        assert len(a) == len(b) and all(x != y for x, y in zip(a, b))
        assert bio.name_partner(ind, seen, seed=0) == partner  # deterministic for a seed
    assert bio.name_partner(0, [0], seed=0) is None  # nobody else: no partner
    batch = bio.batch(np.array([0, 0]), "evaluation", np.random.default_rng(0))
    with pytest.raises(ValueError, match="no individual of the batch has a name partner"):
        bio.corrupt_names(batch, [0])


def test_with_names_rejects_a_name_of_another_length(tiny_data, monkeypatch):
    """A partner name whose length divides the row's name-token count (2 into 6 x 3) must still be refused."""
    bio = tiny_data.biographer
    row, short, same = (int(i) for i in tiny_data.population.seen[:3])
    original = bio.name_tokens
    monkeypatch.setattr(bio, "name_tokens", lambda i: original(row)[:2] if i == short else original(i))
    assert len(bio.name_tokens(row)) == len(bio.name_tokens(same)) == 3
    batch = bio.batch(np.array([row]), "evaluation", np.random.default_rng(0))
    with pytest.raises(ValueError, match=rf"partners\[0\]={short}: its name has 2 tokens, row 0's name 3"):
        bio.with_names(batch, [short])
    out = bio.with_names(batch, [same])
    assert out.tokens[batch.name_mask].tolist() == bio.name_tokens(same) * len(tiny_data.config.data.attributes)
