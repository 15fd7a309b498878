"""BOLT 3 Appendix D: per-commitment secret generation and compact storage."""

from __future__ import annotations

import pytest
from chenilles_bitcoin.bolt3 import (
    START_INDEX,
    RevocationSecretMismatchError,
    RevocationStore,
    ShachainCursor,
    ShachainError,
    UnknownRevocationSecretError,
    generate_from_seed,
    per_commitment_secret,
)
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.bitcoin

H = bytes.fromhex


#: BOLT 3 Appendix D, generation tests: (seed, index, secret).
GENERATION_VECTORS = [
    (
        "00" * 32,
        281474976710655,
        "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
    ),
    (
        "ff" * 32,
        281474976710655,
        "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
    ),
    (
        "ff" * 32,
        0xAAAAAAAAAAA,
        "56f4008fb007ca9acf0e15b054d5c9fd12ee06cea347914ddbaed70d1c13a528",
    ),
    (
        "ff" * 32,
        0x555555555555,
        "9015daaeb06dba4ccc05b91b2f73bd54405f2be9f217fbacd3c5ac2e62327d31",
    ),
    ("01" * 32, 1, "915c75942a26bb3a433a8ce2cb0427c29ec6c1775cfc78328b57f6ba7bfeaa9c"),
]


@pytest.mark.parametrize(
    ("seed", "index", "output"),
    GENERATION_VECTORS,
    ids=["0-final", "FF-final", "FF-alt1", "FF-alt2", "01-last-nontrivial"],
)
def test_generate_from_seed(seed: str, index: int, output: str) -> None:
    assert generate_from_seed(H(seed), index) == H(output)


CORRECT = [
    "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
    "c7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
    "2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
    "27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
    "c65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
    "969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
    "a5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
    "05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
]


def _replace(seq: list[str], changes: dict[int, str]) -> list[str]:
    out = list(seq)
    for i, v in changes.items():
        out[i] = v
    return out


# Each case: the secrets inserted for indexes START_INDEX, START_INDEX-1, ...; the last
# insertion is expected to fail (None = all succeed).
STORAGE_CASES = {
    "correct sequence": (CORRECT, None),
    "#1 incorrect": (
        _replace(
            CORRECT[:2], {0: "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148"}
        ),
        1,
    ),
    "#2 incorrect": (
        _replace(
            CORRECT[:4],
            {
                0: "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
                1: "dddc3a8d14fddf2b68fa8c7fbad2748274937479dd0f8930d5ebb4ab6bd866a3",
            },
        ),
        3,
    ),
    "#3 incorrect": (
        _replace(
            CORRECT[:4], {2: "c51a18b13e8527e579ec56365482c62f180b7d5760b46e9477dae59e87ed423a"}
        ),
        3,
    ),
    "#4 incorrect": (
        _replace(
            CORRECT,
            {
                0: "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
                1: "dddc3a8d14fddf2b68fa8c7fbad2748274937479dd0f8930d5ebb4ab6bd866a3",
                2: "c51a18b13e8527e579ec56365482c62f180b7d5760b46e9477dae59e87ed423a",
                3: "ba65d7b0ef55a3ba300d4e87af29868f394f8f138d78a7011669c79b37b936f4",
            },
        ),
        7,
    ),
    "#5 incorrect": (
        _replace(
            CORRECT[:6], {4: "631373ad5f9ef654bb3dade742d09504c567edd24320d2fcd68e3cc47e2ff6a6"}
        ),
        5,
    ),
    "#6 incorrect": (
        _replace(
            CORRECT,
            {
                4: "631373ad5f9ef654bb3dade742d09504c567edd24320d2fcd68e3cc47e2ff6a6",
                5: "b7e76a83668bde38b373970155c868a653304308f9896692f904a23731224bb1",
            },
        ),
        7,
    ),
    "#7 incorrect": (
        _replace(CORRECT, {6: "e7971de736e01da8ed58b94c2fc216cb1dca9e326f3a96e7194fe8ea8af6c0a3"}),
        7,
    ),
    "#8 incorrect": (
        _replace(CORRECT, {7: "a7efbc61aac46d34f77778bac22c8a20c6a46ca460addc49009bda875ec88fa4"}),
        7,
    ),
}


@pytest.mark.parametrize("name", list(STORAGE_CASES))
def test_insert_secret_vectors(name: str) -> None:
    secrets, failing = STORAGE_CASES[name]
    store = RevocationStore()
    for n, secret in enumerate(secrets):
        if n == failing:
            with pytest.raises(RevocationSecretMismatchError):
                store.insert(H(secret), START_INDEX - n)
            return
        store.insert(H(secret), START_INDEX - n)
    assert failing is None
    for n, secret in enumerate(secrets):
        assert store.get(START_INDEX - n) == H(secret)


def test_store_rejects_unknown_and_out_of_order() -> None:
    seed = H("ff" * 32)
    store = RevocationStore()
    with pytest.raises(UnknownRevocationSecretError):
        store.get_commitment_secret(0)
    store.insert_commitment_secret(per_commitment_secret(seed, 0), 0)
    with pytest.raises(UnknownRevocationSecretError):
        store.get_commitment_secret(1)
    with pytest.raises(ShachainError):
        store.insert_commitment_secret(per_commitment_secret(seed, 2), 2)  # skipped 1
    with pytest.raises(ShachainError):
        store.insert(b"\x00" * 31, START_INDEX - 1)


@settings(max_examples=20, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), count=st.integers(min_value=1, max_value=300))
def test_store_is_compact_and_derives_everything(seed: bytes, count: int) -> None:
    store = RevocationStore()
    for n in range(count):
        store.insert_commitment_secret(per_commitment_secret(seed, n), n)
    assert len(store) <= 49
    for n in range(count):
        assert store.get_commitment_secret(n) == per_commitment_secret(seed, n)
    restored = RevocationStore.from_entries(store.to_entries())
    assert restored.next_index == store.next_index
    assert restored.get_commitment_secret(count - 1) == per_commitment_secret(seed, count - 1)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    indexes=st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=START_INDEX),
            st.integers(min_value=START_INDEX - 70, max_value=START_INDEX),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_cursor_matches_generate_from_seed(seed: bytes, indexes: list[int]) -> None:
    """The incremental cursor gives generate_from_seed's secret for any index sequence."""
    cursor = ShachainCursor(seed)
    for index in indexes:
        assert cursor.secret(index) == generate_from_seed(seed, index)
    for n in range(40):  # commitment numbers one after the other, as the channel uses them
        assert cursor.commitment_secret(n) == per_commitment_secret(seed, n)
    with pytest.raises(ShachainError):
        cursor.secret(START_INDEX + 1)


def test_cursor_matches_the_appendix_vectors() -> None:
    for seed, index, output in GENERATION_VECTORS:
        assert ShachainCursor(H(seed)).secret(index) == H(output)
