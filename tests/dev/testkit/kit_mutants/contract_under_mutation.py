"""The kit's source contract run on the mutant named by $LIFECERT_KIT_MUTANT (a connector
kind of community_office.py). Run only as a child session by test_kit_catches_mutants.py:
not named test_*, so a normal run does not collect it."""

from __future__ import annotations

import os

import pytest

from lifecert_dev.partners.community_office.harness import CommunityOfficeHarness
from lifecert_dev.testkit.contract import SourceContract

pytestmark = pytest.mark.stack


class MutantHarness(CommunityOfficeHarness):
    connector_kind = os.environ.get("LIFECERT_KIT_MUTANT", "community-office")


class TestMutant(SourceContract):
    @pytest.fixture
    def harness(self) -> MutantHarness:
        return MutantHarness()
