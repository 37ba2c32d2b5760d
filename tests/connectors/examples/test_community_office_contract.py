"""The guide's worked example passes the connector test kit."""

from __future__ import annotations

import pytest

from lifecert_dev.partners.community_office.harness import CommunityOfficeHarness
from lifecert_dev.testkit.contract import SourceContract

pytestmark = pytest.mark.stack


class TestCommunityOffice(SourceContract):
    @pytest.fixture
    def harness(self) -> CommunityOfficeHarness:
        return CommunityOfficeHarness()
