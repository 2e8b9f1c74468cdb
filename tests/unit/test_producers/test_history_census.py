"""Reading CIN census XML: every year's layout, unknown elements reported where they are, the writer read back."""

from __future__ import annotations

import io
from datetime import date

import pytest

from producers.history.census import CensusChild, CensusHeader, UnknownElement, read_census
from producers.history.cin_writer import ChildRecord, PlanRecord, ReferralRecord, write_census
from producers.history.codes import concerns, parse_count, parse_date, parse_flag
from producers.history.errors import CensusRefused

LAYOUT_2017 = b"""<?xml version="1.0" encoding="UTF-8"?>
<Message>
  <Header><CollectionDetails><Collection>CIN</Collection><Year>2018</Year><ReferenceDate>2018-03-31</ReferenceDate>
  </CollectionDetails><Source><SourceLevel>L</SourceLevel><LEA>856</LEA></Source></Header>
  <Children>
    <Child>
      <ChildIdentifiers><LAchildID>X1</LAchildID><GenderCurrent>1</GenderCurrent></ChildIdentifiers>
      <ChildCharacteristics><Ethnicity>WBRI</Ethnicity></ChildCharacteristics>
      <CINdetails>
        <CINreferralDate>2017-05-02</CINreferralDate><ReferralSource>5A</ReferralSource>
        <Section47><S47ActualStartDate>2017-05-03</S47ActualStartDate><ICPCnotRequired>TRUE</ICPCnotRequired></Section47>
        <ReferralNFA>FALSE</ReferralNFA>
      </CINdetails>
    </Child>
  </Children>
</Message>
"""

LAYOUT_2025_WITH_NAMESPACE = b"""<?xml version="1.0" encoding="UTF-8"?>
<Message xmlns="http://example.org/cin">
  <Header><CollectionDetails><Year>2025</Year></CollectionDetails><Source><LEA>383</LEA></Source></Header>
  <Children>
    <Child>
      <ChildIdentifiers><LAchildID>X2</LAchildID><Sex>F</Sex></ChildIdentifiers>
      <ChildCharacteristics><Ethnicity>NOBT</Ethnicity></ChildCharacteristics>
      <CINdetails>
        <CINreferralDate>2024-09-09</CINreferralDate><ReferralSource>5D</ReferralSource>
        <CINPlanDates><CINPlanStartDate>2024-10-01</CINPlanStartDate></CINPlanDates>
        <ReferralNFA>false</ReferralNFA>
        <ChildProtectionPlans><CPPstartDate>2024-11-01</CPPstartDate><InitialCategoryOfAbuse>SAB</InitialCategoryOfAbuse>
          <LatestCategoryOfAbuse>SAB</LatestCategoryOfAbuse><NumberOfPreviousCPP>2</NumberOfPreviousCPP>
          <NewIn2030>x</NewIn2030></ChildProtectionPlans>
      </CINdetails>
    </Child>
    <Stray/>
    <Child>
      <ChildIdentifiers><LAchildID>X3</LAchildID></ChildIdentifiers>
      <CINdetails><CINreferralDate>2024-09-10</CINreferralDate><ReferralSource>6</ReferralSource></CINdetails>
    </Child>
  </Children>
  <Trailer/>
</Message>
"""


def items(data: bytes) -> list[CensusHeader | CensusChild | UnknownElement]:
    return list(read_census(io.BytesIO(data)))


def test_the_2017_layout() -> None:
    header, child = items(LAYOUT_2017)
    assert isinstance(header, CensusHeader) and isinstance(child, CensusChild)
    assert (header.lea.text, header.year.text, header.reference_date.text) == ("856", "2018", "2018-03-31")
    assert child.position == 1 and child.la_child_id.text == "X1" and child.upn.text is None
    (referral,) = child.referrals
    assert (referral.referral_date.text, referral.source.text, referral.nfa.text) == ("2017-05-02", "5A", "FALSE")
    assert parse_flag(referral.nfa.text) is False
    assert referral.plans == () and referral.factors == ()


def test_the_2025_layout_in_a_namespace_with_unknown_elements_reported_where_they_are() -> None:
    found = items(LAYOUT_2025_WITH_NAMESPACE)
    children = [i for i in found if isinstance(i, CensusChild)]
    unknown = [(i.path, i.line) for i in found if isinstance(i, UnknownElement)]
    assert [c.la_child_id.text for c in children] == ["X2", "X3"]
    (plan,) = children[0].referrals[0].plans
    assert (plan.start.text, plan.initial_category.text, plan.previous_plans.text, plan.end.text) == (
        "2024-11-01",
        "SAB",
        "2",
        None,
    )
    assert unknown == [
        ("Message/Children/Child[1]/CINdetails[1]/ChildProtectionPlans[1]/NewIn2030", 14),
        ("Message/Children/Stray", 17),
        ("Message/Trailer", 23),
    ]
    assert isinstance(found[-1], UnknownElement), "elements outside every child come at the end"


def test_identifiers_are_kept_out_of_the_repr() -> None:
    child = next(i for i in items(LAYOUT_2017) if isinstance(i, CensusChild))
    assert "X1" not in repr(child)


def test_a_file_with_no_message_is_refused() -> None:
    with pytest.raises(CensusRefused, match="not well-formed"):
        items(b"")
    with pytest.raises(CensusRefused, match="not well-formed XML at line 2"):
        items(b"<Message>\n<Children></Message>")


def test_what_the_writer_writes_reads_back() -> None:
    children = [
        ChildRecord(
            "A & B <1>",
            (
                ReferralRecord(date(2019, 4, 3), "3A", "N2", True, ("neglect", "other")),
                ReferralRecord(
                    date(2019, 8, 1),
                    "6",
                    plans=(PlanRecord(date(2019, 9, 1), date(2020, 1, 2), "EMO", "MUL", 3),),
                ),
            ),
            upn="H383201800117",
        ),
        ChildRecord("C2", (ReferralRecord(date(2024, 5, 1), "10"),)),
    ]
    buffer = io.BytesIO()
    assert write_census(buffer, la_code="383", year=2020, children=children) == 2
    header, first, second = items(buffer.getvalue())
    assert isinstance(header, CensusHeader) and header.lea.text == "383" and header.year.text == "2020"
    assert isinstance(first, CensusChild) and isinstance(second, CensusChild)
    assert (first.la_child_id.text, first.upn.text) == ("A & B <1>", "H383201800117")
    one, two = first.referrals
    assert (one.referral_date.text, one.source.text, one.primary_need.text, one.nfa.text) == (
        "2019-04-03",
        "3A",
        "N2",
        "true",
    )
    assert concerns([f.text or "" for f in one.factors], []) == ["neglect", "other"]
    (plan,) = two.plans
    values = (plan.start, plan.end, plan.initial_category, plan.latest_category, plan.previous_plans)
    assert tuple(v.text for v in values) == ("2019-09-01", "2020-01-02", "EMO", "MUL", "3")
    assert first.line < one.line < two.line < plan.line < second.line, "every element on its own line"


def test_value_parsers_never_echo_what_is_not_a_code_or_a_date() -> None:
    assert parse_date("2019-04-01") == date(2019, 4, 1)
    assert parse_date("2019-04-01Z") == date(2019, 4, 1)
    assert parse_date("2019-04-01T00:00:00") == date(2019, 4, 1)
    assert parse_date(None) is None
    wrong = parse_date("Jane Smith")
    assert not isinstance(wrong, date) and wrong is not None and "Jane" not in wrong.reason
    assert parse_count("0") == 0 and parse_count("12") == 12
    assert not isinstance(parse_count("-1"), int)
    assert concerns([], ["PHY", "MUL"]) == ["physical_abuse", "other"]
    assert concerns(["21"], []) == ["other"], "'no factors identified' and nothing else: the contract needs one"
