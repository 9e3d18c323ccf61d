"""PrefixCache: one k_max run serves every smaller k, and what it serves is what the model gives for that k."""
from client_helpers import tiny_client

from rewardkit.clients import PrefixCache


def test_sample_j_does_not_depend_on_n_so_prefixes_are_exact():
    client = tiny_client()
    kw = dict(max_new_tokens=8, temperature=1.0, seed=4)
    eight = client.generate(["What is 2+3?", "Hi"], n=8, **kw)
    two = client.generate(["What is 2+3?", "Hi"], n=2, **kw)
    assert [[g.text for g in gs[:2]] for gs in eight] == [[g.text for g in gs] for gs in two]
    assert len({g.text for g in eight[0]}) > 1  # the prefix property is not trivially true

    cache = PrefixCache(client)
    big = cache.generate(["What is 2+3?", "Hi"], n=8, **kw)
    assert cache.misses == 2 and cache.hits == 0
    small = cache.generate(["Hi", "What is 2+3?"], n=2, **kw)
    assert cache.misses == 2 and cache.hits == 2  # no model call
    assert [g.text for g in small[0]] == [g.text for g in big[1][:2]] == [g.text for g in two[1]]
    cache.generate(["Hi"], n=2, **{**kw, "seed": 5})  # other settings: a new record
    assert cache.misses == 3


def test_larger_n_regenerates_and_prefix_per_prompt():
    from rewardkit.clients import Generation

    calls = []

    class Echo:
        name = "echo"

        def generate(self, prompts, *, n=1, assistant_prefix=None, **kw):
            out = []
            for p in prompts:
                calls.extend((p, j) for j in range(n))
                out.append([Generation(text=f"{assistant_prefix}{p}-{j}") for j in range(n)])
            return out

    client = Echo()
    cache = PrefixCache(client)
    assert [g.text for g in cache.generate(["a"], n=2, assistant_prefix="V:")[0]] == ["V:a-0", "V:a-1"]
    assert [g.text for g in cache.generate(["a"], n=3, assistant_prefix="V:")[0]] == ["V:a-0", "V:a-1", "V:a-2"]
    assert [g.text for g in cache.generate(["a"], n=1, assistant_prefix="W:")[0]] == ["W:a-0"]  # prefix is part of the key
    assert len(calls) == 2 + 3 + 1
