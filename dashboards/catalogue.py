# ruff: noqa: S608 - every query here is assembled from constants of this module; nothing comes from input.
"""The six dashboards: every panel's SQL, written against the sink's tables (docs/sink.md) in the ClickHouse
datasource plugin's dialect (raw SQL with its macros; dashboards/macros.py expands them as the plugin does).

Conventions, so the figures agree with the published tables (calibration.md):

- Every table is read with `FINAL` (ReplacingMergeTree: a re-delivered event replaces, never adds; purged events
  disappear), except by the pipeline panels that count what the sink wrote. Tables are unqualified: the
  datasource's default database is the sink's database.
- Calendar months and financial years (April to March, labelled `2019/20`) are taken in Europe/London, the
  partnership's local time, as the annual reports count them; `$__timeFilter` selects the instants in range.
- Contacts are grouped by CIN referral source as the Leeds table does: `6` Police, `3A`-`3F` Health,
  `2A`/`2B` Education, everything else Other.
- A referral is a decision with outcome `referral` or `strategy_discussion`; a re-referral is a referral of a
  child whose previous referral was within 12 calendar months (by local date), looking back before the range.
- Missing figures count `missing.reported` with absence_type `missing`; `away` absences are shown apart.
- A repeat plan is a `cp_plan.started` for a child with an earlier plan, known from the stream or from the
  start's own `previous_plans` / `previous_plan_ended_at`; "within 24 months" measures from the end of the most
  recent earlier plan (an earlier plan still open counts as ending at the new start) - the definition of the
  `repeat_cp_plan` rule, so the dashboard and the rule's alerts agree.
- Series over time use the plugin's `$__timeInterval` where the bucket is Grafana's choice (alerts, pipeline),
  and local calendar months where the measure is monthly by definition.
- A measure with a published England figure (dashboards/data/england_reference.toml) shows it as a constant
  column `<column>_england` right after the local one, so the comparison sits in the same row.

Panels that would otherwise group millions of events by month, child or household read the summaries the store
keeps up to date itself (sinks/migrations/0003_dashboard_summaries.sql): monthly event-id sets for the counts
(whole months of the range from the summary, the partial months at its ends from the events, so any range is
exact) and each child's, household's or episode's events in time order. Each such panel keeps its definition over
the event tables as `reference`, and the integration tests check both give the same rows.
"""

from __future__ import annotations

from dashboards.england import FIGURES_FILE, EnglandFigure, EnglandFiguresError, load_england_figures
from dashboards.model import Dashboard, Panel, Row, england_column
from dashboards.suppression import Rate

TZ = "Europe/London"

_MONTH = f"toDateTime(toStartOfMonth(occurred_at, '{TZ}'), '{TZ}')"
_FY = f"toYear(addMonths(toStartOfMonth(occurred_at, '{TZ}'), -3))"
_FY_LABEL = "concat(toString(fy), '/', substring(toString(fy + 1), 3, 2))"
_AGENCY = (
    "multiIf(contact_source = '6', 'Police', startsWith(contact_source, '3'), 'Health', "
    "startsWith(contact_source, '2'), 'Education', 'Other')"
)
_REFERRALS = f"""
    SELECT occurred_at, re_referral
    FROM (
      SELECT
        arraySort(groupArray(occurred_at)) AS times,
        arrayMap(t -> toDate(t, '{TZ}'), times) AS days,
        arrayMap((d, i) -> i > 1 AND d <= addMonths(days[i - 1], 12), days, arrayEnumerate(days)) AS repeats
      FROM contact_decisions FINAL
      WHERE is_referral AND occurred_at >= $__fromTime - INTERVAL 13 MONTH AND occurred_at <= $__toTime
      GROUP BY child_id
    )
    ARRAY JOIN times AS occurred_at, repeats AS re_referral"""

# The local months wholly inside the range: from the first month starting at or after $__from, up to (not
# including) the month holding $__to, which ends after it. Dates, as the summaries' `month`.
_FIRST_WHOLE_MONTH = f"addMonths(toStartOfMonth($__fromTime - INTERVAL 1 SECOND, '{TZ}'), 1)"
_AFTER_WHOLE_MONTHS = f"toStartOfMonth($__toTime, '{TZ}')"


def _per_month(summary: str, table: str, columns: dict[str, str] | None = None) -> str:
    """Rows (month, <columns>, n): the events of `table` in the range, counted per local month and `columns`
    (name: its expression over `table`; the summary has a column of that name). Whole months are read from
    `summary` (a month's distinct event ids less the erased ones); the partial months at the range's ends from
    `table` itself, so the rows are exact for any range.

    The partial months' bounds are DateTime64: chDB 26.9 prunes month partitions wrongly when a DateTime64 column
    is compared strictly (<, >) with a DateTime, and loses rows (docs/sink.md, "Summaries for the dashboards")."""
    columns = columns or {}
    keys = "".join(f", {name}" for name in columns)
    expressions = "".join(f", {expression} AS {name}" for name, expression in columns.items())
    return f"""
    SELECT month{keys}, toUInt64(sum(length(event_ids) - length(purged_ids))) AS n
    FROM {summary} FINAL
    WHERE month >= {_FIRST_WHOLE_MONTH} AND month < {_AFTER_WHOLE_MONTHS}
    GROUP BY month{keys}
    UNION ALL
    SELECT toStartOfMonth(occurred_at, '{TZ}') AS month{expressions}, count() AS n
    FROM {table} FINAL
    WHERE $__timeFilter(occurred_at)
      AND NOT (occurred_at >= toDateTime64({_FIRST_WHOLE_MONTH}, 3, '{TZ}')
               AND occurred_at < toDateTime64({_AFTER_WHOLE_MONTHS}, 3, '{TZ}'))
    GROUP BY month{keys}"""


def _live_events(summary: str, column: str, where: str = "") -> str:
    """Rows (events): each subject's events from a per-subject summary (`column` maps each event, a tuple starting
    with its time, to whether it was erased), in time order, erased ones left out."""
    condition = f"\n      WHERE {where}" if where else ""
    return f"""
      SELECT arrayFilter((event, erased) -> erased = 0, {column}.1, {column}.2) AS events
      FROM {summary} FINAL{condition}"""


def _repeats_within_12_months(dates: str) -> str:
    """For each of a subject's local `dates` in order (YYYYMMDD numbers), whether the one before was at most 12
    calendar months earlier. A date is within 12 months of an earlier one when its number exceeds the earlier's by at
    most 10000: `addMonths(d, 12)` is the same day a year on, except that 29 February gives 28 February, and no
    29 February follows a 28 February in the same year."""
    return f"arrayMap((gap, i) -> i > 1 AND gap <= 10000, arrayDifference({dates}), arrayEnumerate({dates}))"


# Each child's referrals (child_referrals: (occurred_at, id, local date as YYYYMMDD)), each a re-referral when the
# child's previous referral was within 12 months. The whole history is kept, so no look-back window is needed: a
# referral before _REFERRALS' 13-month window was more than 12 months before any referral in the range.
_REFERRALS_SUMMARY = f"""
    SELECT occurred_at, day, re_referral
    FROM ({_live_events("child_referrals", "referrals", "newest_at >= $__fromTime")}
    )
    ARRAY JOIN events.1 AS occurred_at, events.3 AS day, {_repeats_within_12_months("events.3")} AS re_referral"""


_FY_OF_MONTH = "toYear(addMonths(month, -3))"
_FY_OF_DAY = "toUInt16(intDiv(day, 10000) - (intDiv(day, 100) % 100 < 4))"
"""The financial year of a YYYYMMDD `day`: its year, less one from January to March."""
_CONTACTS_PER_MONTH = _per_month("contacts_by_month", "contacts", {"contact_source": "contact_source"})
_DECISIONS_PER_MONTH = _per_month("contact_decisions_by_month", "contact_decisions", {"outcome": "outcome"})


ENGLAND: dict[str, EnglandFigure] = load_england_figures()
"""The published England figures by measure id, read once from their data file (dashboards/england.py)."""


def _pct(part: str, whole: str) -> str:
    return f"round(100 * {part} / {whole}, 1)"


def _england(measure: str) -> EnglandFigure:
    """The England figure a panel shows; a clear error, not a KeyError, when the data file has lost it."""
    try:
        return ENGLAND[measure]
    except KeyError:
        raise EnglandFiguresError(
            str(FIGURES_FILE), [f"{FIGURES_FILE}: no [{measure}] table, though a statutory panel shows that figure"]
        ) from None


def _beside(column: str, figure: EnglandFigure) -> str:
    """`figure` as a constant column named after the local `column`: the same value in every row."""
    return f"{figure.value!r} AS {england_column(column)}"


# --- Front Door ---------------------------------------------------------------------------------------------------

CONTACTS_BY_MONTH = Panel(
    key="front_door.contacts_by_agency_month",
    title="Contacts by agency, per month",
    description="Contacts to the Front Door by referral source group (Police 6, Health 3A-3F, Education 2A/2B, "
    "Other), per calendar month.",
    kind="bars",
    sql=f"""
SELECT toDateTime(month, '{TZ}') AS time, {_AGENCY} AS series, sum(n) AS contacts
FROM ({_CONTACTS_PER_MONTH}
)
GROUP BY time, series""",
    reference=f"""
SELECT {_MONTH} AS time, {_AGENCY} AS series, count() AS contacts
FROM contacts FINAL
WHERE $__timeFilter(occurred_at)
GROUP BY time, series""",
    order_by="time, series",
    counts=("contacts",),
    width=24,
)

CONTACTS_BY_YEAR = Panel(
    key="front_door.contacts_by_agency_year",
    title="Contacts by agency, per financial year",
    description="The Leeds Duty and Advice table: contacts by source group with each group's share of the year.",
    kind="table",
    sql=f"""
SELECT
  {_FY_LABEL} AS year,
  police, {_pct("police", "total")} AS police_pct,
  health, {_pct("health", "total")} AS health_pct,
  education, {_pct("education", "total")} AS education_pct,
  other, {_pct("other", "total")} AS other_pct,
  total
FROM (
  SELECT
    {_FY_OF_MONTH} AS fy,
    sumIf(n, contact_source = '6') AS police,
    sumIf(n, startsWith(contact_source, '3')) AS health,
    sumIf(n, startsWith(contact_source, '2')) AS education,
    sumIf(n, NOT (contact_source = '6' OR startsWith(contact_source, '3') OR startsWith(contact_source, '2'))) AS other,
    sum(n) AS total
  FROM ({_CONTACTS_PER_MONTH}
  )
  GROUP BY fy
)""",
    reference=f"""
SELECT
  {_FY_LABEL} AS year,
  police, {_pct("police", "total")} AS police_pct,
  health, {_pct("health", "total")} AS health_pct,
  education, {_pct("education", "total")} AS education_pct,
  other, {_pct("other", "total")} AS other_pct,
  total
FROM (
  SELECT
    {_FY} AS fy,
    countIf(contact_source = '6') AS police,
    countIf(startsWith(contact_source, '3')) AS health,
    countIf(startsWith(contact_source, '2')) AS education,
    countIf(NOT (contact_source = '6' OR startsWith(contact_source, '3') OR startsWith(contact_source, '2'))) AS other,
    count() AS total
  FROM contacts FINAL
  WHERE $__timeFilter(occurred_at)
  GROUP BY fy
)""",
    order_by="year",
    counts=("police", "health", "education", "other", "total"),
    rates=(
        Rate("police_pct", ("police", "total")),
        Rate("health_pct", ("health", "total")),
        Rate("education_pct", ("education", "total")),
        Rate("other_pct", ("other", "total")),
    ),
    units={c: "percent" for c in ("police_pct", "health_pct", "education_pct", "other_pct")},
    width=24,
    height=6,
)

DECISIONS_BY_MONTH = Panel(
    key="front_door.decisions_month",
    title="Decisions on contacts, per month",
    description="What became of contacts: no further action, advice, early help, referral, strategy discussion.",
    kind="bars",
    sql=f"""
SELECT toDateTime(month, '{TZ}') AS time, outcome AS series, sum(n) AS decisions
FROM ({_DECISIONS_PER_MONTH}
)
GROUP BY time, series""",
    reference=f"""
SELECT {_MONTH} AS time, outcome AS series, count() AS decisions
FROM contact_decisions FINAL
WHERE $__timeFilter(occurred_at)
GROUP BY time, series""",
    order_by="time, series",
    counts=("decisions",),
)

REFERRALS_BY_MONTH = Panel(
    key="front_door.referrals_month",
    title="Referrals and re-referrals, per month",
    description="Referrals (outcome referral or strategy discussion) and re-referrals (a previous referral of "
    "the child within 12 months).",
    kind="timeseries",
    sql=f"""
SELECT toDateTime(YYYYMMDDToDate(month * 100 + 1), '{TZ}') AS time, referrals, re_referrals
FROM (
  SELECT intDiv(day, 100) AS month, count() AS referrals, countIf(re_referral) AS re_referrals
  FROM ({_REFERRALS_SUMMARY}
  )
  WHERE $__timeFilter(occurred_at)
  GROUP BY month
)""",
    reference=f"""
SELECT {_MONTH} AS time, count() AS referrals, countIf(re_referral) AS re_referrals
FROM ({_REFERRALS}
)
WHERE $__timeFilter(occurred_at)
GROUP BY time""",
    order_by="time",
    counts=("referrals", "re_referrals"),
)

_RE_REFERRAL_ENGLAND = _england("re_referral_rate")

REFERRAL_RATES = Panel(
    key="front_door.referral_rates_year",
    title="Referral and re-referral rates, per financial year",
    description="Referrals as a share of contacts, and re-referrals (within 12 months) as a share of referrals "
    "(DfE definition), beside the published England rate.",
    kind="table",
    sql=f"""
SELECT
  {_FY_LABEL} AS year,
  contacts,
  referrals,
  {_pct("referrals", "contacts")} AS referral_rate,
  re_referrals,
  {_pct("re_referrals", "referrals")} AS re_referral_rate,
  {_beside("re_referral_rate", _RE_REFERRAL_ENGLAND)}
FROM (
  SELECT {_FY_OF_MONTH} AS fy, sum(n) AS contacts
  FROM ({_CONTACTS_PER_MONTH}
  )
  GROUP BY fy
) AS c
FULL OUTER JOIN (
  SELECT {_FY_OF_DAY} AS fy, count() AS referrals, countIf(re_referral) AS re_referrals
  FROM ({_REFERRALS_SUMMARY}
  )
  WHERE $__timeFilter(occurred_at)
  GROUP BY fy
) AS r USING fy""",
    reference=f"""
SELECT
  {_FY_LABEL} AS year,
  contacts,
  referrals,
  {_pct("referrals", "contacts")} AS referral_rate,
  re_referrals,
  {_pct("re_referrals", "referrals")} AS re_referral_rate,
  {_beside("re_referral_rate", _RE_REFERRAL_ENGLAND)}
FROM (
  SELECT {_FY} AS fy, count() AS contacts FROM contacts FINAL WHERE $__timeFilter(occurred_at) GROUP BY fy
) AS c
FULL OUTER JOIN (
  SELECT {_FY} AS fy, count() AS referrals, countIf(re_referral) AS re_referrals
  FROM ({_REFERRALS}
  )
  WHERE $__timeFilter(occurred_at)
  GROUP BY fy
) AS r USING fy""",
    order_by="year",
    counts=("contacts", "referrals", "re_referrals"),
    rates=(
        Rate("referral_rate", ("referrals", "contacts")),
        Rate("re_referral_rate", ("re_referrals", "referrals")),
    ),
    units={"referral_rate": "percent", "re_referral_rate": "percent"},
    england={"re_referral_rate": _RE_REFERRAL_ENGLAND},
    width=24,
    height=6,
)

FRONT_DOOR = Dashboard(
    uid="safeguard-front-door",
    title="Front Door",
    description="Contacts to the Front Door, what was decided, referrals and re-referrals.",
    rows=(
        Row("Contacts", (CONTACTS_BY_MONTH, CONTACTS_BY_YEAR)),
        Row("Decisions and referrals", (DECISIONS_BY_MONTH, REFERRALS_BY_MONTH, REFERRAL_RATES)),
    ),
    tags=("front-door",),
)


# --- Missing ------------------------------------------------------------------------------------------------------

_COHORT = "if(looked_after, 'Looked after', 'Not looked after')"

# Each child's missing.reported events in the range (child_missing_reports: (occurred_at, id, looked_after,
# absence_type)): their cohorts, and whether the child was looked after at each `missing` one.
_CHILD_REPORTS = f"""
    SELECT
      arrayMap(t -> $__timeFilter(t), events.1) AS inside,
      arrayFilter(
        (cohort, x) -> x,
        arrayMap((looked_after, absence_type) -> multiIf(absence_type = 'away', 'Away from placement', looked_after,
                                                          'Looked after', 'Not looked after'), events.3, events.4),
        inside) AS cohorts,
      arrayFilter((looked_after, absence_type, x) -> x AND absence_type = 'missing', events.3, events.4, inside)
        AS missing_looked_after
    FROM ({_live_events("child_missing_reports", "reports", "newest_at >= $__fromTime")}
    )"""

MISSING_BY_MONTH = Panel(
    key="missing.episodes_month",
    title="Missing episodes, per month",
    description="Episodes reported missing (whereabouts unknown), for looked-after children and for others.",
    kind="bars",
    sql=f"""
SELECT {_MONTH} AS time, {_COHORT} AS series, count() AS episodes
FROM missing_episodes FINAL
WHERE event_type = 'missing.reported' AND absence_type = 'missing' AND $__timeFilter(occurred_at)
GROUP BY time, series""",
    order_by="time, series",
    counts=("episodes",),
)

MISSING_COHORTS = Panel(
    key="missing.episodes_and_children",
    title="Episodes and children",
    description="Missing episodes and the distinct children they belong to, looked after against not; "
    "`away` absences (looked-after children whose whereabouts are known) apart.",
    kind="table",
    sql=f"""
SELECT cohort, episodes, children, round(episodes / children, 1) AS episodes_per_child
FROM (
  SELECT cohort, sum(countEqual(cohorts, cohort)) AS episodes, count() AS children
  FROM ({_CHILD_REPORTS}
  )
  ARRAY JOIN arrayDistinct(cohorts) AS cohort
  GROUP BY cohort
)""",
    reference="""
SELECT cohort, episodes, children, round(episodes / children, 1) AS episodes_per_child
FROM (
  SELECT
    multiIf(absence_type = 'away', 'Away from placement', looked_after, 'Looked after', 'Not looked after') AS cohort,
    count() AS episodes,
    uniqExact(child_id) AS children
  FROM missing_episodes FINAL
  WHERE event_type = 'missing.reported' AND $__timeFilter(occurred_at)
  GROUP BY cohort
)""",
    order_by="cohort",
    counts=("episodes", "children"),
    rates=(Rate("episodes_per_child", ("episodes", "children")),),
)

REPEAT_MISSING = Panel(
    key="missing.repeat_children",
    title="Children missing more than once",
    description="Children by number of missing episodes in the period: more than once, three times or more.",
    kind="table",
    sql=f"""
SELECT
  cohort,
  count() AS children,
  countIf(episodes >= 2) AS repeat_children,
  countIf(episodes >= 3) AS three_or_more,
  {_pct("repeat_children", "children")} AS repeat_share
FROM (
  SELECT {_COHORT} AS cohort, episodes
  FROM ({_CHILD_REPORTS}
  )
  ARRAY JOIN [true, false] AS looked_after,
    [countEqual(missing_looked_after, true), countEqual(missing_looked_after, false)] AS episodes
  WHERE episodes > 0
)
GROUP BY cohort""",
    reference=f"""
SELECT
  cohort,
  count() AS children,
  countIf(episodes >= 2) AS repeat_children,
  countIf(episodes >= 3) AS three_or_more,
  {_pct("repeat_children", "children")} AS repeat_share
FROM (
  SELECT {_COHORT} AS cohort, child_id, count() AS episodes
  FROM missing_episodes FINAL
  WHERE event_type = 'missing.reported' AND absence_type = 'missing' AND $__timeFilter(occurred_at)
  GROUP BY cohort, child_id
)
GROUP BY cohort""",
    order_by="cohort",
    counts=("children", "repeat_children", "three_or_more"),
    rates=(Rate("repeat_share", ("repeat_children", "children")),),
    units={"repeat_share": "percent"},
)

RETURN_INTERVIEWS = Panel(
    key="missing.return_interviews_month",
    title="Return interviews offered within 72 hours",
    description="Episodes found in each month, and those whose first return-interview step came within 72 "
    "hours of the child being found (statutory guidance 2014); the rest were later or not at all.",
    kind="table",
    sql=f"""
SELECT
  toDateTime(toStartOfMonth(found_at, '{TZ}'), '{TZ}') AS month,
  count() AS found,
  countIf(has_step AND first_step <= found_at + INTERVAL 72 HOUR) AS within_72h,
  countIf(has_step AND first_step > found_at + INTERVAL 72 HOUR) AS later,
  countIf(NOT has_step) AS none,
  {_pct("within_72h", "found")} AS within_72h_pct
FROM (
  -- each episode's first found event and first return-interview step from the start of the range to 72 hours
  -- after its end (missing_episode_steps: (occurred_at, id, is the found event))
  SELECT
    arrayFirstIndex((t, is_found) -> is_found AND t >= $__fromTime AND t <= $__toTime + INTERVAL 72 HOUR,
                    events.1, events.3) AS found_index,
    arrayFirstIndex((t, is_found) -> NOT is_found AND t >= $__fromTime AND t <= $__toTime + INTERVAL 72 HOUR,
                    events.1, events.3) AS step_index,
    events.1[found_index] AS found_at,
    events.1[step_index] AS first_step,
    step_index > 0 AS has_step
  FROM ({_live_events("missing_episode_steps", "steps", "newest_at >= $__fromTime")}
  )
  WHERE found_index > 0 AND $__timeFilter(found_at)
)
GROUP BY month""",
    reference=f"""
SELECT
  toDateTime(toStartOfMonth(found_at, '{TZ}'), '{TZ}') AS month,
  count() AS found,
  countIf(has_step AND first_step <= found_at + INTERVAL 72 HOUR) AS within_72h,
  countIf(has_step AND first_step > found_at + INTERVAL 72 HOUR) AS later,
  countIf(NOT has_step) AS none,
  {_pct("within_72h", "found")} AS within_72h_pct
FROM (
  SELECT
    episode_id,
    minIf(occurred_at, event_type = 'missing.found') AS found_at,
    minIf(occurred_at, event_type = 'missing.return_interview') AS first_step,
    countIf(event_type = 'missing.return_interview') > 0 AS has_step
  FROM missing_episodes FINAL
  WHERE event_type IN ('missing.found', 'missing.return_interview')
    AND occurred_at >= $__fromTime AND occurred_at <= $__toTime + INTERVAL 72 HOUR
  GROUP BY episode_id
  HAVING countIf(event_type = 'missing.found') > 0 AND $__timeFilter(found_at)
)
GROUP BY month""",
    order_by="month",
    counts=("found", "within_72h", "later", "none"),
    rates=(Rate("within_72h_pct", ("within_72h", "found")),),
    units={"within_72h_pct": "percent", "month": "dateTimeAsLocalNoDateIfToday"},
    width=24,
)

MISSING = Dashboard(
    uid="safeguard-missing",
    title="Missing children",
    description="Missing episodes and children, looked after against not, repeat missing, return interviews.",
    rows=(
        Row("Episodes", (MISSING_BY_MONTH, MISSING_COHORTS)),
        Row("Repeat missing and return interviews", (REPEAT_MISSING, RETURN_INTERVIEWS)),
    ),
    tags=("missing",),
)


# --- Domestic abuse -----------------------------------------------------------------------------------------------

_INCIDENTS_PER_MONTH = _per_month(
    "domestic_incidents_by_month",
    "domestic_incidents",
    {
        "dash_risk": "dash_risk",
        "any_child_present": "toBool(children_present > 0)",
        "is_crime": "is_crime",
        "marac_referral": "marac_referral",
    },
)

INCIDENTS_BY_MONTH = Panel(
    key="domestic.incidents_month",
    title="Domestic incidents, per month",
    description="Police-recorded domestic incidents, and those at which a child was present (saw or heard).",
    kind="timeseries",
    sql=f"""
SELECT toDateTime(month, '{TZ}') AS time, sum(n) AS incidents, sumIf(n, any_child_present) AS child_present
FROM ({_INCIDENTS_PER_MONTH}
)
GROUP BY time""",
    reference=f"""
SELECT {_MONTH} AS time, count() AS incidents, countIf(children_present > 0) AS child_present
FROM domestic_incidents FINAL
WHERE $__timeFilter(occurred_at)
GROUP BY time""",
    order_by="time",
    counts=("incidents", "child_present"),
)

INCIDENTS_SUMMARY = Panel(
    key="domestic.summary_year",
    title="Incidents with a child present, per financial year",
    description="Incidents, the share with a child present (Leeds 2019/20: 26.8%), crimes, MARAC referrals.",
    kind="table",
    sql=f"""
SELECT
  {_FY_LABEL} AS year,
  incidents,
  child_present,
  {_pct("child_present", "incidents")} AS child_present_pct,
  crimes,
  marac_referrals
FROM (
  SELECT
    {_FY_OF_MONTH} AS fy,
    sum(n) AS incidents,
    sumIf(n, any_child_present) AS child_present,
    sumIf(n, is_crime) AS crimes,
    sumIf(n, marac_referral) AS marac_referrals
  FROM ({_INCIDENTS_PER_MONTH}
  )
  GROUP BY fy
)""",
    reference=f"""
SELECT
  {_FY_LABEL} AS year,
  incidents,
  child_present,
  {_pct("child_present", "incidents")} AS child_present_pct,
  crimes,
  marac_referrals
FROM (
  SELECT
    {_FY} AS fy,
    count() AS incidents,
    countIf(children_present > 0) AS child_present,
    countIf(is_crime) AS crimes,
    countIf(marac_referral) AS marac_referrals
  FROM domestic_incidents FINAL
  WHERE $__timeFilter(occurred_at)
  GROUP BY fy
)""",
    order_by="year",
    counts=("incidents", "child_present", "crimes", "marac_referrals"),
    rates=(Rate("child_present_pct", ("child_present", "incidents")),),
    units={"child_present_pct": "percent"},
)

DASH_BY_MONTH = Panel(
    key="domestic.dash_month",
    title="DASH risk level, per month",
    description="Incidents by DASH risk assessment: standard, medium, high.",
    kind="bars",
    sql=f"""
SELECT toDateTime(month, '{TZ}') AS time, dash_risk AS series, sum(n) AS incidents
FROM ({_INCIDENTS_PER_MONTH}
)
GROUP BY time, series""",
    reference=f"""
SELECT {_MONTH} AS time, dash_risk AS series, count() AS incidents
FROM domestic_incidents FINAL
WHERE $__timeFilter(occurred_at)
GROUP BY time, series""",
    order_by="time, series",
    counts=("incidents",),
)

REPEAT_HOUSEHOLDS = Panel(
    key="domestic.repeat_households",
    title="Repeat households",
    description="Households with more than one incident in the period, three or more (the SafeLives escalation "
    "threshold), and incidents that repeat one at the same household within 12 months.",
    kind="table",
    sql=f"""
SELECT
  count() AS households,
  countIf(in_range >= 2) AS repeat_households,
  countIf(in_range >= 3) AS three_or_more,
  sum(in_range) AS incidents,
  sum(repeats) AS repeat_incidents,
  {_pct("repeat_incidents", "incidents")} AS repeat_incident_pct
FROM (
  -- each household's incidents (household_incidents: (occurred_at, id, local date as YYYYMMDD)); the whole
  -- history, so no look-back window is needed
  SELECT
    arrayMap(t -> $__timeFilter(t), events.1) AS inside,
    arraySum(inside) AS in_range,
    arrayCount((x, repeat) -> x AND repeat, inside, {_repeats_within_12_months("events.3")}) AS repeats
  FROM ({_live_events("household_incidents", "incidents", "newest_at >= $__fromTime")}
  )
  WHERE in_range > 0
)""",
    reference=f"""
SELECT
  count() AS households,
  countIf(in_range >= 2) AS repeat_households,
  countIf(in_range >= 3) AS three_or_more,
  sum(in_range) AS incidents,
  sum(repeats) AS repeat_incidents,
  {_pct("repeat_incidents", "incidents")} AS repeat_incident_pct
FROM (
  SELECT
    arraySort(groupArray(occurred_at)) AS times,
    arrayMap(t -> toDate(t, '{TZ}'), times) AS days,
    arrayMap(t -> $__timeFilter(t), times) AS inside,
    arrayCount(x -> x, inside) AS in_range,
    arrayCount((d, i, x) -> x AND i > 1 AND d <= addMonths(days[i - 1], 12), days, arrayEnumerate(days), inside)
      AS repeats
  FROM domestic_incidents FINAL
  WHERE occurred_at >= $__fromTime - INTERVAL 13 MONTH AND occurred_at <= $__toTime
  GROUP BY household_id
  HAVING in_range > 0
)""",
    order_by="households",
    counts=("households", "repeat_households", "three_or_more", "incidents", "repeat_incidents"),
    rates=(Rate("repeat_incident_pct", ("repeat_incidents", "incidents")),),
    units={"repeat_incident_pct": "percent"},
)

DOMESTIC = Dashboard(
    uid="safeguard-domestic-abuse",
    title="Domestic abuse",
    description="Police-recorded domestic incidents, children present, DASH risk, repeat households.",
    rows=(
        Row("Incidents", (INCIDENTS_BY_MONTH, INCIDENTS_SUMMARY)),
        Row("Risk and repeats", (DASH_BY_MONTH, REPEAT_HOUSEHOLDS)),
    ),
    tags=("domestic-abuse",),
)


# --- Child protection ---------------------------------------------------------------------------------------------

_PLANS = """
  SELECT
    plan_id,
    any(child_id) AS child_id,
    anyIf(category, event_type = 'cp_plan.started') AS category,
    countIf(event_type = 'cp_plan.started') > 0 AS has_start,
    minIf(occurred_at, event_type = 'cp_plan.started') AS started_at,
    countIf(event_type = 'cp_plan.ended') > 0 AS has_end,
    minIf(occurred_at, event_type = 'cp_plan.ended') AS ended_at,
    anyIf(previous_plans, event_type = 'cp_plan.started') AS previous_plans,
    anyIf(previous_plan_ended_at, event_type = 'cp_plan.started') AS previous_plan_ended_at
  FROM cp_plans FINAL
  WHERE occurred_at <= $__toTime
  GROUP BY plan_id"""

_STARTS = f"""
  SELECT
    plan.1 AS plan_id,
    plan.2 AS category,
    plan.4 AS started_at,
    plan.5 AS has_end,
    plan.6 AS ended_at,
    plan.7 AS previous_plans,
    plan.8 AS previous_plan_ended_at,
    -- the child's earlier plans, and when the latest of them ended as seen from this start
    arrayFilter(p -> p.1 != plan.1 AND (p.3 AND p.4 < plan.4 OR NOT p.3 AND p.5 AND p.6 <= plan.4), plans) AS earlier,
    length(earlier) AS earlier_plans,
    arrayMax(arrayMap(p -> if(p.5, least(p.6, plan.4), p.4), earlier)) AS previous_end,
    earlier_plans > 0 OR coalesce(previous_plans, 0) > 0 OR previous_plan_ended_at IS NOT NULL AS repeat_ever,
    earlier_plans > 0 AND started_at <= addMonths(previous_end, 24)
      OR previous_plan_ended_at IS NOT NULL AND toDate(started_at) <= addMonths(previous_plan_ended_at, 24)
      AS repeat_24m
  FROM (
    SELECT child_id, groupArray((plan_id, category, has_start, started_at, has_end, ended_at, previous_plans,
                                 previous_plan_ended_at)) AS plans
    FROM ({_PLANS}
    )
    GROUP BY child_id
  )
  ARRAY JOIN plans AS plan
  WHERE plan.3"""

# The same plans, from each child's plan events (child_plans: (occurred_at, id, is a start, a hash of plan_id,
# previous_plans, previous_plan_ended_at)) up to the end of the range, in arrays per child (one element per plan):
# a plan's start and end are its first start and first end event, as _PLANS takes them.
_STARTS_SUMMARY = f"""
  SELECT started_at, has_end, ended_at, repeat_ever, repeat_24m
  FROM (
    SELECT
      arrayFilter((event, t) -> t <= $__toTime, events, events.1) AS upto,
      arrayDistinct(upto.4) AS plans,
      arrayMap(p -> arrayFirstIndex((q, start) -> start AND q = p, upto.4, upto.3), plans) AS start_index,
      arrayMap(p -> arrayFirstIndex((q, start) -> NOT start AND q = p, upto.4, upto.3), plans) AS end_index,
      arrayMap(i -> i > 0, start_index) AS has_start,
      arrayMap(i -> upto.1[i], start_index) AS started,
      arrayMap(i -> i > 0, end_index) AS has_ends,
      arrayMap(i -> upto.1[i], end_index) AS ended,
      -- for each plan, which of the child's plans are earlier, and when the latest of them ended as seen from it
      arrayMap((p, s) -> arrayMap((q, q_start, q_started, q_end, q_ended) -> q != p AND (q_start AND q_started < s
                                    OR NOT q_start AND q_end AND q_ended <= s),
                                  arrayEnumerate(plans), has_start, started, has_ends, ended),
               arrayEnumerate(plans), started) AS earlier,
      arrayMap(e -> arraySum(e), earlier) AS earlier_plans,
      arrayMap((e, s) -> arrayMax(arrayMap(
                 (x, q_started, q_end, q_ended) -> if(x, if(q_end, least(q_ended, s), q_started), toDateTime64(0, 3)),
                 e, started, has_ends, ended)),
               earlier, started) AS previous_ends,
      arrayMap(i -> upto.5[i], start_index) AS previous_plans,
      arrayMap(i -> upto.6[i], start_index) AS previous_plan_ended_at
    FROM ({_live_events("child_plans", "plan_events")}
    )
  )
  ARRAY JOIN has_start, started AS started_at, has_ends AS has_end, ended AS ended_at,
    arrayMap((n, plans_before, ended_on) -> n > 0 OR coalesce(plans_before, 0) > 0 OR ended_on IS NOT NULL,
             earlier_plans, previous_plans, previous_plan_ended_at) AS repeat_ever,
    arrayMap((n, s, previous_end, ended_on) -> n > 0 AND s <= addMonths(previous_end, 24)
               OR ended_on IS NOT NULL AND toDate(s) <= addMonths(ended_on, 24),
             earlier_plans, started, previous_ends, previous_plan_ended_at) AS repeat_24m
  WHERE has_start"""


def _month_end(month: str) -> str:
    """The last second of a local `month` (a Date, its first day)."""
    return f"toDateTime(addMonths({month}, 1), '{TZ}') - INTERVAL 1 SECOND"


def _first_month_ending(moment: str, comparison: str) -> str:
    """The first local month (a Date) whose last second is `comparison` (>= or >) `moment`: the moment's own month,
    or the next one when the moment is in (or, for >, at) that month's last second."""
    month = f"toStartOfMonth({moment}, '{TZ}')"
    return f"if({_month_end(month)} {comparison} {moment}, {month}, addMonths({month}, 1))"


PLANS_BY_MONTH = Panel(
    key="cp.started_ended_month",
    title="Plans started and ended, per month",
    description="Child protection plans starting and ending in each month.",
    kind="timeseries",
    sql=f"""
SELECT {_MONTH} AS time,
  countIf(event_type = 'cp_plan.started') AS started,
  countIf(event_type = 'cp_plan.ended') AS ended
FROM cp_plans FINAL
WHERE $__timeFilter(occurred_at)
GROUP BY time""",
    order_by="time",
    counts=("started", "ended"),
)

OPEN_AT_MONTH_END = Panel(
    key="cp.open_month_end",
    title="Children on a plan at the end of each month",
    description="Plans open at the last second of each month (Leeds 2019/20 average: 519), those that are a "
    "repeat within 24 months of the previous plan, and those open for more than two years.",
    kind="timeseries",
    sql=f"""
SELECT
  toDateTime(month, '{TZ}') AS time,
  sumIf(plans, open_from <= month AND month < open_until) AS open,
  sumIf(plans, open_from <= month AND month < open_until AND repeat_24m) AS repeat_24m_open,
  sumIf(plans, open_from <= month AND month < open_until AND over_two_years_from <= month) AS over_two_years
FROM (
  -- the plans counted by the months they are open in (open at a month's end: started by its last second, not ended
  -- by then) and from which month on they are open over two years (started before the last second of the month
  -- 24 months earlier, which is what addMonths(month_end, -24) is)
  SELECT
    {_first_month_ending("started_at", ">=")} AS open_from,
    if(has_end, {_first_month_ending("ended_at", ">=")}, toDate('2149-06-06')) AS open_until,
    addMonths({_first_month_ending("started_at", ">")}, 24) AS over_two_years_from,
    repeat_24m,
    count() AS plans
  FROM ({_STARTS_SUMMARY}
  )
  GROUP BY open_from, open_until, over_two_years_from, repeat_24m
) AS plans
CROSS JOIN (
  SELECT arrayJoin(arrayMap(
    n -> addMonths(toStartOfMonth($__fromTime, '{TZ}'), n),
    range(toUInt32(dateDiff('month', toStartOfMonth($__fromTime, '{TZ}'), toStartOfMonth($__toTime, '{TZ}')) + 1))
  )) AS month
) AS months
WHERE {_month_end("month")} <= $__toTime
GROUP BY month""",
    reference=f"""
SELECT
  month AS time,
  countIf(started_at <= month_end AND (NOT has_end OR ended_at > month_end)) AS open,
  countIf(started_at <= month_end AND (NOT has_end OR ended_at > month_end) AND repeat_24m) AS repeat_24m_open,
  countIf(started_at <= month_end AND (NOT has_end OR ended_at > month_end)
          AND started_at < addMonths(month_end, -24)) AS over_two_years
FROM ({_STARTS}
) AS plans
CROSS JOIN (
  SELECT
    toDateTime(month_date, '{TZ}') AS month,
    toDateTime(addMonths(month_date, 1), '{TZ}') - INTERVAL 1 SECOND AS month_end
  FROM (
    SELECT arrayJoin(arrayMap(
      n -> addMonths(toStartOfMonth($__fromTime, '{TZ}'), n),
      range(toUInt32(dateDiff('month', toStartOfMonth($__fromTime, '{TZ}'), toStartOfMonth($__toTime, '{TZ}')) + 1))
    )) AS month_date
  )
  WHERE month_end <= $__toTime
) AS months
GROUP BY month""",
    order_by="time",
    counts=("open", "repeat_24m_open", "over_two_years"),
    width=24,
)

CATEGORIES = Panel(
    key="cp.categories",
    title="Plans started, by category of abuse",
    description="Initial category of plans starting in the period (CIN: NEG neglect, PHY physical, SAB sexual, "
    "EMO emotional, MUL multiple).",
    kind="barchart",
    sql="""
SELECT category, count() AS plans
FROM cp_plans FINAL
WHERE event_type = 'cp_plan.started' AND $__timeFilter(occurred_at)
GROUP BY category""",
    order_by="plans DESC, category",
    counts=("plans",),
    category="category",
)

REPEAT_PLANS = Panel(
    key="cp.repeat_plans",
    title="Repeat plans",
    description="Plans started in the period that are a second or subsequent plan for the child: within 24 "
    "months of the previous plan's end (Leeds), and ever (DfE).",
    kind="table",
    sql=f"""
SELECT
  count() AS started,
  countIf(repeat_24m) AS repeat_within_24_months,
  {_pct("repeat_within_24_months", "started")} AS repeat_24m_pct,
  countIf(repeat_ever) AS repeat_ever,
  {_pct("repeat_ever", "started")} AS repeat_ever_pct
FROM ({_STARTS_SUMMARY}
)
WHERE $__timeFilter(started_at)""",
    reference=f"""
SELECT
  count() AS started,
  countIf(repeat_24m) AS repeat_within_24_months,
  {_pct("repeat_within_24_months", "started")} AS repeat_24m_pct,
  countIf(repeat_ever) AS repeat_ever,
  {_pct("repeat_ever", "started")} AS repeat_ever_pct
FROM ({_STARTS}
)
WHERE $__timeFilter(started_at)""",
    order_by="started",
    counts=("started", "repeat_within_24_months", "repeat_ever"),
    rates=(
        Rate("repeat_24m_pct", ("repeat_within_24_months", "started")),
        Rate("repeat_ever_pct", ("repeat_ever", "started")),
    ),
    units={"repeat_24m_pct": "percent", "repeat_ever_pct": "percent"},
)

OVER_TWO_YEARS = Panel(
    key="cp.open_at_end",
    title="Plans open at the end of the period",
    description="Plans open at the end of the time range: all, open for more than two years (Leeds 2019/20: 5), "
    "and repeats within 24 months.",
    kind="table",
    sql="""
SELECT
  count() AS open,
  countIf(started_at < addMonths($__toTime, -24)) AS over_two_years,
  countIf(repeat_24m) AS repeat_within_24_months
FROM ("""
    + _STARTS_SUMMARY
    + """
)
WHERE started_at <= $__toTime AND (NOT has_end OR ended_at > $__toTime)""",
    reference="""
SELECT
  count() AS open,
  countIf(started_at < addMonths($__toTime, -24)) AS over_two_years,
  countIf(repeat_24m) AS repeat_within_24_months
FROM ("""
    + _STARTS
    + """
)
WHERE started_at <= $__toTime AND (NOT has_end OR ended_at > $__toTime)""",
    order_by="open",
    counts=("open", "over_two_years", "repeat_within_24_months"),
)

CHILD_PROTECTION = Dashboard(
    uid="safeguard-child-protection",
    title="Child protection plans",
    description="Plans started, ended and open; categories; repeat plans; plans over two years.",
    rows=(
        Row("Plans", (PLANS_BY_MONTH, CATEGORIES, OPEN_AT_MONTH_END)),
        Row("Repeats and long plans", (REPEAT_PLANS, OVER_TWO_YEARS)),
    ),
    tags=("child-protection",),
)


# --- Alerts -------------------------------------------------------------------------------------------------------

ALERTS_BY_RULE = Panel(
    key="alerts.by_rule",
    title="Alerts raised per rule",
    description="Alerts by rule, bucketed by the event time that completed the condition (triggered_at).",
    kind="bars",
    sql="""
SELECT $__timeInterval(triggered_at) AS time, rule_id AS series, count() AS alerts
FROM alerts FINAL
WHERE $__timeFilter(triggered_at)
GROUP BY time, series""",
    order_by="time, series",
    counts=("alerts",),
)

ALERTS_BY_SEVERITY = Panel(
    key="alerts.by_severity",
    title="Alerts raised per severity",
    description="Alerts by severity over time (critical, high, medium, info).",
    kind="bars",
    sql="""
SELECT $__timeInterval(triggered_at) AS time, severity AS series, count() AS alerts
FROM alerts FINAL
WHERE $__timeFilter(triggered_at)
GROUP BY time, series""",
    order_by="time, series",
    counts=("alerts",),
)

ALERTS_TABLE = Panel(
    key="alerts.rule_severity",
    title="Alerts by rule and severity",
    description="Alerts in the period by rule and severity.",
    kind="table",
    sql="""
SELECT
  rule_id,
  countIf(severity = 'critical') AS critical,
  countIf(severity = 'high') AS high,
  countIf(severity = 'medium') AS medium,
  countIf(severity = 'info') AS info,
  count() AS total
FROM alerts FINAL
WHERE $__timeFilter(triggered_at)
GROUP BY rule_id""",
    order_by="total DESC, rule_id",
    counts=("critical", "high", "medium", "info", "total"),
)

_ACKS = """
  SELECT a.alert_id AS alert_id, a.severity AS severity, a.raised_at AS raised_at,
         ack.acknowledged_at AS acknowledged_at, ack.alert_id != '' AS is_acknowledged
  FROM alerts AS a FINAL
  LEFT JOIN (
    SELECT alert_id, min(occurred_at) AS acknowledged_at
    FROM alert_lifecycle FINAL
    WHERE state = 'acknowledged'
    GROUP BY alert_id
  ) AS ack ON ack.alert_id = a.alert_id
  WHERE $__timeFilter(a.raised_at)"""

# The same rows from alert_acknowledgements (each alert with its first acknowledgement, NULL while there is none;
# the zero time then, as the join gives).
_ACKS_SUMMARY = """
  SELECT alert_id, severity, raised_at, coalesce(first_acknowledged_at, toDateTime64(0, 3, 'UTC')) AS acknowledged_at,
         first_acknowledged_at IS NOT NULL AS is_acknowledged
  FROM alert_acknowledgements FINAL
  WHERE $__timeFilter(raised_at)"""

TIME_TO_ACK = Panel(
    key="alerts.time_to_acknowledge",
    title="Time to acknowledge",
    description="From raising to the first acknowledgement, by severity (when the notifier records "
    "acknowledgements): alerts, acknowledged, median and 90th percentile in minutes.",
    kind="table",
    sql=f"""
SELECT
  severity,
  count() AS alerts,
  countIf(is_acknowledged) AS acknowledged,
  round(quantileExactIf(0.5)(dateDiff('second', raised_at, acknowledged_at) / 60, is_acknowledged), 1)
    AS median_minutes,
  round(quantileExactIf(0.9)(dateDiff('second', raised_at, acknowledged_at) / 60, is_acknowledged), 1)
    AS p90_minutes
FROM ({_ACKS_SUMMARY}
)
GROUP BY severity""",
    reference=f"""
SELECT
  severity,
  count() AS alerts,
  countIf(is_acknowledged) AS acknowledged,
  round(quantileExactIf(0.5)(dateDiff('second', raised_at, acknowledged_at) / 60, is_acknowledged), 1)
    AS median_minutes,
  round(quantileExactIf(0.9)(dateDiff('second', raised_at, acknowledged_at) / 60, is_acknowledged), 1)
    AS p90_minutes
FROM ({_ACKS}
)
GROUP BY severity""",
    order_by="severity",
    counts=("alerts", "acknowledged"),
    rates=(Rate("median_minutes", ("acknowledged",)), Rate("p90_minutes", ("acknowledged",))),
    units={"median_minutes": "m", "p90_minutes": "m"},
)

TIME_TO_ACK_OVER_TIME = Panel(
    key="alerts.time_to_acknowledge_series",
    title="Median time to acknowledge",
    description="Median minutes from raising to acknowledgement, by when the alert was raised (times, not counts: "
    "nothing to suppress).",
    kind="timeseries",
    sql=f"""
SELECT
  $__timeInterval(raised_at) AS time,
  severity AS series,
  quantileExact(0.5)(dateDiff('second', raised_at, acknowledged_at) / 60) AS median_minutes
FROM ({_ACKS_SUMMARY}
)
WHERE is_acknowledged
GROUP BY time, series""",
    reference=f"""
SELECT
  $__timeInterval(raised_at) AS time,
  severity AS series,
  quantileExact(0.5)(dateDiff('second', raised_at, acknowledged_at) / 60) AS median_minutes
FROM ({_ACKS}
)
WHERE is_acknowledged
GROUP BY time, series""",
    order_by="time, series",
    unit="m",
)

# Each alert raised in the range with its first resolution (the notifier's `resolved` lifecycle events, migration
# 0006): when, and with which outcome; the zero time and '' when it is not resolved (as the join gives).
_RESOLUTIONS = """
  SELECT a.alert_id AS alert_id, a.rule_id AS rule_id, a.severity AS severity, a.raised_at AS raised_at,
         r.resolved_at AS resolved_at, ifNull(r.outcome, '') AS outcome, r.alert_id != '' AS is_resolved
  FROM alerts AS a FINAL
  LEFT JOIN (
    SELECT alert_id, min(occurred_at) AS resolved_at, argMin(outcome, occurred_at) AS outcome
    FROM alert_lifecycle FINAL
    WHERE state = 'resolved'
    GROUP BY alert_id
  ) AS r ON r.alert_id = a.alert_id
  WHERE $__timeFilter(a.raised_at)"""

TIME_TO_RESOLVE = Panel(
    key="alerts.time_to_resolve",
    title="Time to resolve",
    description="From raising to resolution with an outcome (contact made, strategy discussion, no further action, "
    "duplicate), by severity: alerts, resolved, median and 90th percentile in minutes.",
    kind="table",
    sql=f"""
SELECT
  severity,
  count() AS alerts,
  countIf(is_resolved) AS resolved,
  round(quantileExactIf(0.5)(dateDiff('second', raised_at, resolved_at) / 60, is_resolved), 1) AS median_minutes,
  round(quantileExactIf(0.9)(dateDiff('second', raised_at, resolved_at) / 60, is_resolved), 1) AS p90_minutes
FROM ({_RESOLUTIONS}
)
GROUP BY severity""",
    order_by="severity",
    counts=("alerts", "resolved"),
    rates=(Rate("median_minutes", ("resolved",)), Rate("p90_minutes", ("resolved",))),
    units={"median_minutes": "m", "p90_minutes": "m"},
)

OUTCOMES_BY_RULE = Panel(
    key="alerts.outcomes_by_rule",
    title="Outcomes per rule",
    description="Alerts raised in the period by rule and how they were resolved; `open` are not resolved yet.",
    kind="table",
    sql=f"""
SELECT
  rule_id,
  count() AS alerts,
  countIf(outcome = 'contact_made') AS contact_made,
  countIf(outcome = 'strategy_discussion') AS strategy_discussion,
  countIf(outcome = 'no_further_action') AS no_further_action,
  countIf(outcome = 'duplicate') AS duplicate,
  countIf(NOT is_resolved) AS open
FROM ({_RESOLUTIONS}
)
GROUP BY rule_id""",
    order_by="alerts DESC, rule_id",
    counts=("alerts", "contact_made", "strategy_discussion", "no_further_action", "duplicate", "open"),
)

ALERTS = Dashboard(
    uid="safeguard-alerts",
    title="Alerts",
    description="Threshold alerts raised per rule and severity, how quickly managers acknowledge and resolve them, "
    "and with what outcome.",
    rows=(
        Row("Raised", (ALERTS_BY_RULE, ALERTS_BY_SEVERITY, ALERTS_TABLE)),
        Row("Acknowledged", (TIME_TO_ACK, TIME_TO_ACK_OVER_TIME)),
        Row("Resolved", (TIME_TO_RESOLVE, OUTCOMES_BY_RULE)),
    ),
    tags=("alerts",),
)


# --- Pipeline health ----------------------------------------------------------------------------------------------

_EVENT_TABLES = ("contacts", "contact_decisions", "missing_episodes", "domestic_incidents", "cp_plans")
# Without FINAL: these panels count what the sink wrote, re-deliveries included (a re-delivery is work it did).
_INGESTED = "\n  UNION ALL\n".join(
    f"  SELECT kafka_topic, recorded_at, ingested_at FROM {table} WHERE $__timeFilter(ingested_at)"
    for table in _EVENT_TABLES
)

INGEST_DELAY = Panel(
    key="pipeline.ingest_delay",
    title="Consumer lag: delay from source to store (p95)",
    description="95th percentile of seconds between an event being recorded at the source and the sink writing "
    "it, per topic: how far the pipeline runs behind the agencies.",
    kind="timeseries",
    sql=f"""
SELECT $__timeInterval(ingested_at) AS time, kafka_topic AS series,
  quantile(0.95)(dateDiff('millisecond', recorded_at, ingested_at) / 1000) AS delay_p95_s
FROM (
{_INGESTED}
)
GROUP BY time, series""",
    order_by="time, series",
    unit="s",
)

INGEST_RATE = Panel(
    key="pipeline.ingest_rate",
    title="Rows stored per second",
    description="Rows the sink wrote per second, per topic (rows in each interval / `$__interval_s`).",
    kind="timeseries",
    sql=f"""
SELECT $__timeInterval(ingested_at) AS time, kafka_topic AS series, count() / $__interval_s AS rows_per_second
FROM (
{_INGESTED}
)
GROUP BY time, series""",
    order_by="time, series",
    unit="rps",
)

FRESHNESS = Panel(
    key="pipeline.freshness",
    title="Newest row per topic",
    description="Per topic: rows stored in the period, the newest event time and ingest time, and seconds since "
    "the newest ingest (a growing number with traffic expected means the sink has stopped).",
    kind="table",
    sql=f"""
SELECT
  kafka_topic AS topic,
  count() AS rows,
  max(recorded_at) AS newest_recorded,
  max(ingested_at) AS newest_ingested,
  dateDiff('second', max(ingested_at), now64(3)) AS seconds_since_ingest
FROM (
{_INGESTED}
)
GROUP BY topic""",
    order_by="topic",
    units={"seconds_since_ingest": "s", "newest_recorded": "dateTimeAsIso", "newest_ingested": "dateTimeAsIso"},
    width=24,
    height=6,
)

DEAD_LETTERS = Panel(
    key="pipeline.dead_letters",
    title="Dead letters by reason",
    description="Messages rejected by producers and the worker, by reason, over time.",
    kind="bars",
    sql="""
SELECT $__timeInterval(dead_lettered_at) AS time, reason_code AS series, count() AS dead_letters
FROM dead_letters FINAL
WHERE $__timeFilter(dead_lettered_at)
GROUP BY time, series""",
    order_by="time, series",
)

DEAD_LETTERS_TABLE = Panel(
    key="pipeline.dead_letters_table",
    title="Dead letters by reason and source",
    description="Dead letters in the period by reason and where they came from (topic or file).",
    kind="table",
    sql="""
SELECT reason_code AS reason, coalesce(source_topic, source_file, source) AS origin, count() AS dead_letters
FROM dead_letters FINAL
WHERE $__timeFilter(dead_lettered_at)
GROUP BY reason, origin""",
    order_by="dead_letters DESC, reason, origin",
)

FINDINGS = Panel(
    key="pipeline.data_quality",
    title="Data-quality findings",
    description="Messages the sink could not store as they are, or stored but placed against the contract "
    "(wrong topic or key), by reason and topic.",
    kind="table",
    sql="""
SELECT reason_code AS reason, kafka_topic AS topic, count() AS findings, countIf(row_stored) AS stored_anyway
FROM data_quality_findings FINAL
WHERE $__timeFilter(message_timestamp)
GROUP BY reason, topic""",
    order_by="findings DESC, reason, topic",
)

QUALITY_RULES = Panel(
    key="pipeline.quality_rules",
    title="Data-quality checks (national rules)",
    description="Events flagged by the national validators' checks (docs/history-import.md, Data-quality checks), "
    "by rule, found in the period by the history importer or the stream worker (one per rule and event); "
    "`not_fed` were kept from the rules (impossible dates, or no event to make).",
    kind="table",
    sql="""
SELECT
  rule_id AS rule,
  check_name,
  count() AS findings,
  countIf(NOT fed) AS not_fed,
  countIf(found_by = 'importer') AS by_importer,
  countIf(found_by = 'worker') AS by_worker
FROM quality_findings FINAL
WHERE $__timeFilter(found_at)
GROUP BY rule, check_name""",
    order_by="findings DESC, rule",
)

PIPELINE = Dashboard(
    uid="safeguard-pipeline",
    title="Pipeline health",
    description="Consumer lag, throughput, dead letters by reason, data-quality findings and national-rule checks.",
    rows=(
        Row("Flow", (INGEST_DELAY, INGEST_RATE, FRESHNESS)),
        Row("Rejected and flagged", (DEAD_LETTERS, DEAD_LETTERS_TABLE, FINDINGS, QUALITY_RULES)),
    ),
    tags=("pipeline",),
)

DASHBOARDS: tuple[Dashboard, ...] = (FRONT_DOOR, MISSING, DOMESTIC, CHILD_PROTECTION, ALERTS, PIPELINE)
"""Every dashboard, in the order they are listed."""

PANELS: dict[str, Panel] = {p.key: p for d in DASHBOARDS for p in d.panels}
"""Every panel by key."""
