"""Stored ``.lqz`` files decode to exactly the tokens recorded when they were written, and to
their reference pixels up to the synthesis's float rounding (see ``pixels_match``).

A change that alters what existing files decode to (a kernel's summation order, the prior's
band split, a model's weights) fails here; rewriting the files is a deliberate command
(``python tests/expected_streams.py --rewrite``), never part of a test run.
"""

from __future__ import annotations

import hashlib

import pytest
from expected_streams import (
    CASES,
    EXPECTED,
    load_manifest,
    pixels_match,
    reference_path,
    token_digest,
)
from PIL import Image

import lqz
from lqz import api
from lqz import format as fmt
from lqz.errors import UnknownModel

MANIFEST = load_manifest()


def test_every_case_is_frozen() -> None:
    assert sorted(MANIFEST) == sorted(case.name for case in CASES)
    for case in CASES:
        assert (EXPECTED / f"{case.name}.lqz").is_file()
        assert reference_path(case).is_file()


def test_cases_cover_every_quality_and_model() -> None:
    qualities = {case.quality for case in CASES}
    assert qualities == set(lqz.QUALITIES)
    models = {fmt.read_header((EXPECTED / f"{c.name}.lqz").read_bytes()).model_id for c in CASES}
    assert models == set(api.model_set().model_ids)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_frozen_file_decodes_as_recorded(case) -> None:
    data = (EXPECTED / f"{case.name}.lqz").read_bytes()
    expected = MANIFEST[case.name]
    assert hashlib.sha256(data).hexdigest() == expected["file_sha256"], "the stored file changed"
    image = lqz.decode(data)
    assert image.mode == expected["mode"]
    assert [image.width, image.height] == expected["size"]
    assert token_digest(data) == expected["tokens_sha256"]
    with Image.open(reference_path(case)) as reference:
        assert pixels_match(image, reference) is None


LEGACY = EXPECTED.parent / "legacy"


@pytest.mark.parametrize(
    ("release", "model"), [("0.1.0", "7cd821bfaada055e"), ("0.2.0", "bc5471d24f98f09f")]
)
def test_file_of_a_retired_model_names_it(release: str, model: str) -> None:
    data = (LEGACY / f"q5-rgb-6tiles-150x100-{release}.lqz").read_bytes()
    with pytest.raises(UnknownModel) as caught:
        lqz.decode(data)
    message = str(caught.value)
    assert "\n" not in message
    assert model in message and f"written by lqz {release}" in message


def test_file_of_an_older_release_decodes_as_today() -> None:
    case = next(c for c in CASES if c.name == "q2-gray-80x50")
    data = (LEGACY / "q2-gray-80x50-0.1.0.lqz").read_bytes()
    assert fmt.read_header(data).writer == "lqz 0.1.0"
    assert token_digest(data) == MANIFEST[case.name]["tokens_sha256"]
    with Image.open(reference_path(case)) as reference:
        assert pixels_match(lqz.decode(data), reference) is None
