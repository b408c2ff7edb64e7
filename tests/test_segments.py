"""segments.yaml errors, and the `campaign segment` commands on a small history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import WorkspaceError
from engine.segments.definitions import load_segments
from engine.segments.parser import SegmentError

CUSTOMERS = """\
customer_id,email,first_name,last_name,city,country
C1,ann@example.com,Ann,Lee,Berlin,DE
C2,zoe@example.org,Zoë,Müller,Berlin,DE
C3,jo@example.net,Jo,García,Sevilla,ES
"""
ORDERS = """\
order_id,customer_id,placed_at,sku,quantity,unit_price,product_name,category
O1,C1,2026-01-10,SEED-01,2,3.50,Tomato seeds,Garden
O2,C1,2026-03-01,POT-02,1,40.00,Pot,Garden
O3,C1,2026-10-01,BOOK-1,1,20.00,Book,Books
O4,C2,2025-06-01,SEED-01,1,3.50,Tomato seeds,Garden
"""
SEGMENTS = """\
segments:
  regulars:
    description: Three orders or more
    orders: {at_least: 3}
  lapsed:
    description: Nothing for 90 days
    last_order: {before: 90 days ago}
  berliners:
    customer: {city: Berlin, country: de}
  seed_buyers_not_lapsed:
    all:
      - bought: {product: seed-01}
      - not: {segment: lapsed}
"""
NOW = ("--now", "2026-11-01")


def segments_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "segments.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "problems"), [
    ("segments:\n  a:\n    order: {at_least: 3}\n",
     ["3:5: unknown condition 'order' (did you mean 'orders'?)"]),
    ("segments:\n  a:\n    orders: {at_least: 5, at_most: 3}\n",
     ["3:13: conflicting bounds: at_least 5 is above at_most 3"]),
    ("segments:\n  a:\n    orders: {at_least: three}\n",
     ["3:24: 'at_least' of 'orders' must be a whole number, found 'three'"]),
    ("segments:\n  a:\n    orders: {exactly: 2, at_least: 1}\n",
     ["3:13: 'orders' has 'exactly' together with another bound; use either exactly or "
      "at_least/at_most"]),
    ("segments:\n  a:\n    spent: {at_least: 10.005}\n",
     ["3:23: 'at_least' of 'spent' has more than 2 decimal places"]),
    ("segments:\n  a:\n    spent: {within: 90 days}\n",
     ["3:12: 'spent' needs a bound: at_least, at_most or exactly"]),
    ("segments:\n  a:\n    last_order: {before: 90 dayz ago}\n",
     ["3:26: '90 dayz ago' is not a point in time (write e.g. 2026-03-01, 2026-03-01 09:00 or "
      "90 days ago)"]),
    ("segments:\n  a:\n    orders: {at_least: 1, within: 3 fortnights}\n",
     ["3:35: '3 fortnights' is not a length of time (write e.g. 90 days, 12 weeks, 6 months or "
      "1 year)"]),
    ("segments:\n  a:\n    last_order: {before: 2026-01-01, after: 2026-02-01}\n",
     ["3:17: conflicting bounds: nothing is both before 2026-01-01 00:00:00 and at or after "
      "2026-02-01 00:00:00"]),
    ("segments:\n  a:\n    any: []\n", ["3:10: 'any' needs at least one condition"]),
    ("segments:\n  a:\n    all: {orders: {at_least: 1}}\n",
     ["3:10: 'all' takes a list of conditions (lines starting with '- '), found a mapping"]),
    ("segments:\n  a:\n    segment: b\n", ["3:14: unknown segment 'b'"]),
    ("segments:\n  lapsed:\n    orders: {at_least: 1}\n  b:\n    segment: lapsd\n",
     ["5:14: unknown segment 'lapsd' (did you mean 'lapsed'?)"]),
    ("segments:\n  a:\n    segment: b\n  b:\n    not: {segment: a}\n",
     ["2:3: segment references form a cycle: a -> b -> a; remove one of these references"]),
    ("segments:\n  a:\n    bought: {within: 30 days}\n",
     ["3:13: 'bought' needs a product (SKU) or a category"]),
    ("segments:\n  a:\n    bought: {categories: Garden}\n",
     ["3:14: unknown option 'categories' for 'bought' (did you mean 'category'?)"]),
    ("segments:\n  a:\n    customer: {citty: Berlin}\n",
     ["3:16: unknown customer field 'citty' (did you mean 'city'?)"]),
    ("segments:\n  a:\n    customer: {subscribed: maybe}\n",
     ["3:28: 'subscribed' is true or false, found 'maybe'"]),
    ("segments:\n  a:\n    rfm: {recency: [0, 5]}\n",
     ["3:20: 'recency' of 'rfm' takes scores from 1 to 5 (one or a list), found a list"]),
    ("segments:\n  a:\n    tier: gold\n",
     ["3:11: no loyalty tiers are defined; add [[tiers]] tables to campaign.toml"]),
    ("segments:\n  a:\n    orders: {at_least: 1}\n    spent: {at_least: 1}\n",
     ["4:5: 'spent' is a second condition in one place; combine conditions with 'all:' or "
      "'any:' lists"]),
    ("segments:\n  a:\n    description: only words\n",
     ["2:3: segment 'a' has no condition; add one such as 'orders: {at_least: 1}'"]),
    ("segment:\n  a:\n    orders: {at_least: 1}\n",
     ["1:1: expected a 'segments:' mapping of segment names to conditions"]),
    ("segments:\n  2fast:\n    orders: {at_least: 1}\n",
     ["2:3: segment name '2fast' must start with a letter and use only letters, digits, '_' "
      "and '-'"]),
    ("segments:\n  a:\n    recieved: {within: 30 days}\n",
     ["3:5: unknown condition 'recieved' (did you mean 'received'?)"]),
    ("segments:\n  a:\n    received: {campain: spring}\n",
     ["3:16: unknown option 'campain' for 'received' (did you mean 'campaign'?)"]),
    ("segments:\n  a:\n    opened: {at_least: -1}\n",
     ["3:24: 'at_least' of 'opened' must be a whole number of 0 or more, found -1"]),
    ("segments:\n  a:\n    clicked: {campaign: [], url: /x}\n",
     ["3:25: 'campaign' of 'clicked' takes a name or a list of names, found an empty list"]),
    ("segments:\n  a:\n    clicked: {url: ''}\n",
     ["3:20: 'url' of 'clicked' takes a part of a link such as '/sale' or "
      "'shop.example/garden', found ''"]),
    ("segments:\n  a:\n    survey: {at_most: 6}\n",
     ["3:13: 'survey' needs a question: the key of a survey question, as in "
      "{question: recommend, at_most: 6}"]),
    ("segments:\n  a:\n    survey: {question: Recommend, at_most: 6}\n",
     ["3:24: 'question' of 'survey' takes a question key (lower-case letters, digits and '_'), "
      "found 'Recommend'"]),
    ("segments:\n  a:\n    survey: {question: recommend, at_most: 6, answer: 5}\n",
     ["3:13: 'survey' takes either bounds (at_least, at_most, exactly) for number answers or "
      "'answer', not both"]),
    ("segments:\n  a:\n    survey: {question: found_us, answer: [Other, true]}\n",
     ["3:42: 'answer' of 'survey' takes an answer (a text or a whole number) or a list of "
      "them, found a list"]),
    ("segments:\n  a:\n    survey: {question: recommend, at_most: 6.5}\n",
     ["3:44: 'at_most' of 'survey' must be a whole number of 0 or more, found 6.5"]),
])
def test_each_mistake_is_reported_with_its_place(tmp_path, text, problems):
    path = segments_file(tmp_path, text)
    with pytest.raises(SegmentError) as error:
        load_segments(path)
    assert error.value.problems == [f"{path}:{problem}" for problem in problems]


def test_all_mistakes_of_a_file_are_reported_at_once(tmp_path):
    path = segments_file(tmp_path, """\
segments:
  a:
    all:
      - order: {at_least: 3}
      - last_order: {before: soon}
  b:
    rfm: {recency: 6}
  c:
    segment: nope
""")
    with pytest.raises(SegmentError) as error:
        load_segments(path)
    assert error.value.problems == [
        f"{path}:4:9: unknown condition 'order' (did you mean 'orders'?)",
        f"{path}:5:30: 'soon' is not a point in time (write e.g. 2026-03-01, 2026-03-01 09:00 "
        "or 90 days ago)",
        f"{path}:7:20: 'recency' of 'rfm' takes scores from 1 to 5 (one or a list), found 6 "
        "(int)",
        f"{path}:9:14: unknown segment 'nope'",
    ]
    assert str(error.value) == "4 problems in segment definitions (listed above)"


def test_yaml_syntax_errors_are_located(tmp_path):
    path = segments_file(tmp_path, "segments:\n  a:\n    orders: {at_least: 3\n  b: x\n")
    with pytest.raises(WorkspaceError) as error:
        load_segments(path)
    assert str(error.value).startswith(f"{path}:4:")
    assert "not valid YAML" in str(error.value)
    duplicate = segments_file(tmp_path, "segments:\n  a:\n    orders: {at_least: 3}\n"
                                        "  a:\n    orders: {at_least: 1}\n")
    with pytest.raises(WorkspaceError, match=r"segments.yaml:4:3: not valid YAML: found "
                                             r"duplicate key \"a\""):
        load_segments(duplicate)


@pytest.fixture
def shop(workspace):
    """A workspace with three customers and four orders, and the segments above."""
    for kind, content in (("customers", CUSTOMERS), ("orders", ORDERS)):
        path = workspace.write(f"{kind}.csv", content)
        assert workspace.run("import", kind, str(path)).exit_code == 0
    workspace.write("segments.yaml", SEGMENTS)
    return workspace


def test_segment_list_counts_and_describes(shop):
    result = shop.run("segment", "list", *NOW)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "SEGMENT                 CUSTOMERS  DESCRIPTION\n"
        "regulars                        1  Three orders or more\n"
        "lapsed                          1  Nothing for 90 days\n"
        "berliners                       2\n"
        "seed_buyers_not_lapsed          1\n")


def test_segment_count_depends_on_now(shop):
    assert shop.run("segment", "count", "regulars", *NOW).stdout == "1\n"
    assert shop.run("segment", "count", "regulars", "--now", "2026-09-01").stdout == "0\n"
    assert shop.run("segment", "count", "lapsed", "--now", "2025-07-01").stdout == "0\n"


def test_segment_show_lists_members_with_figures(shop):
    result = shop.run("segment", "show", "berliners", *NOW)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "CUSTOMER  EMAIL            NAME        ORDERS  SPENT  LAST ORDER  TIER\n"
        "C1        ann@example.com  Ann Lee          3  67.00  2026-10-01  -\n"
        "C2        zoe@example.org  Zoë Müller       1   3.50  2025-06-01  -\n"
        "(all 2 customers in berliners as of 2026-11-01 00:00:00 UTC)\n")
    limited = shop.run("segment", "show", "berliners", "--limit", "1", *NOW)
    assert limited.stdout.splitlines()[-1] == ("(1 of 2 customers in berliners as of "
                                               "2026-11-01 00:00:00 UTC)")


def test_segment_show_sql_is_one_select(shop):
    result = shop.run("segment", "show", "seed_buyers_not_lapsed", "--sql", *NOW)
    assert result.exit_code == 0, result.output
    sql = result.stdout
    assert sql.startswith("SELECT customers.id \nFROM customers \nWHERE ")
    assert sql.rstrip().endswith(";") and sql.count(";") == 1
    assert "'2026-08-03" in sql  # 90 days before --now, written in


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_segment_export(shop, file_format):
    output = shop.root / f"out.{file_format}"
    result = shop.run("segment", "export", "berliners", "--format", file_format,
                      "--output", str(output), *NOW)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Wrote 2 customers of berliners to {output}.\n"
    text = output.read_text(encoding="utf-8")
    if file_format == "csv":
        assert text == ("customer_id,email,first_name,last_name,orders,spent,last_order_at,tier\n"
                        "C1,ann@example.com,Ann,Lee,3,67.00,2026-10-01T00:00:00Z,\n"
                        "C2,zoe@example.org,Zoë,Müller,1,3.50,2025-06-01T00:00:00Z,\n")
    else:
        first = json.loads(text.splitlines()[0])
        assert first == {"customer_id": "C1", "email": "ann@example.com", "first_name": "Ann",
                         "last_name": "Lee", "orders": 3, "spent": "67.00",
                         "last_order_at": "2026-10-01T00:00:00Z", "tier": None}


def test_segment_errors_reach_the_user_without_traceback(shop):
    result = shop.run("segment", "count", "regular", *NOW)
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {shop.root / 'segments.yaml'}: no segment named 'regular'; did you mean "
           "'regulars'?\n")
    shop.write("segments.yaml", "segments:\n  a:\n    order: {at_least: 1}\n  b:\n    x: 1\n")
    result = shop.run("segment", "list", *NOW)
    path = shop.root / "segments.yaml"
    assert result.exit_code == 1
    assert result.stderr == (f"{path}:3:5: unknown condition 'order' (did you mean 'orders'?)\n"
                             f"{path}:5:5: unknown condition 'x'\n"
                             "Error: 2 problems in segment definitions (listed above)\n")
    assert shop.run("segment", "count", "a", "--now", "yesterday-ish").exit_code == 2
