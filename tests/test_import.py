"""`campaign import` on SQLite, PostgreSQL and MariaDB: round trip, upsert, mapping, bad input."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

CUSTOMERS = """\
customer_id,email,first_name,last_name,locale,timezone,country,city,birthday,signed_up_at,subscribed,source
C1,ann@example.com,Ann,O'Brien,en-IE,Europe/Dublin,ie,Dublin,1990-05-17,2025-01-02T10:00:00Z,yes,web
C2,zoe@example.org,Zoë,Müller,de_DE,Europe/Berlin,DE,Berlin,,2025-02-03 08:30:00+01:00,false,
C3,noat.example.net,José,García,es,,ES,Sevilla,,2025-03-04,true,store
"""
PRODUCTS = """\
sku,name,category,price,url,image_url
SEED-01,Tomato seeds,Garden,3.50,https://shop.example/p/seed-01,
POT-02,Terracotta pot Ø20,Garden,"12,90",,https://shop.example/img/pot-02.jpg
"""
ORDERS = """\
order_id,customer_id,placed_at,sku,quantity,unit_price,product_name,category,currency
O1,C1,2026-03-01T09:00:00Z,SEED-01,2,3.50,,,
O1,C1,2026-03-01T09:00:00Z,POT-02,1,12.90,,,
O2,C2,15.04.2026 10:30,SHEAR-03,1,24.00,Pruning shears & holster,Garden,EUR
O3,C1,2026-05-01,SEED-01,1,3.15,,,GBP
"""


def imported(workspace, kind: str, content: str | bytes, *options: str, name: str = ""):
    path = workspace.write(name or f"{kind}.csv", content)
    return workspace.run("import", kind, str(path), *options)


def test_round_trip_of_all_three_files(workspace):
    result = imported(workspace, "customers", CUSTOMERS)
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("customers.csv: 3 new, 0 updated.\n")
    assert "1 customers have an email address that looks invalid" in result.stderr
    assert imported(workspace, "products", PRODUCTS).exit_code == 0
    result = imported(workspace, "orders", ORDERS)
    assert result.exit_code == 0, result.output
    assert "orders.csv: 3 orders (3 new, 0 updated), 1 new products." in result.stdout

    rows = workspace.rows(
        "SELECT external_id, email, first_name, last_name, locale, timezone, country, city, "
        "birthday, signed_up_at, subscribed FROM customers ORDER BY external_id")
    assert [tuple(r[:8]) for r in rows] == [
        ("C1", "ann@example.com", "Ann", "O'Brien", "en_IE", "Europe/Dublin", "IE", "Dublin"),
        ("C2", "zoe@example.org", "Zoë", "Müller", "de_DE", "Europe/Berlin", "DE", "Berlin"),
        ("C3", "noat.example.net", "José", "García", "es", None, "ES", "Sevilla"),
    ]
    assert [_day(r[8]) for r in rows] == [date(1990, 5, 17), None, None]
    assert [_moment(r[9]) for r in rows] == [
        datetime(2025, 1, 2, 10), datetime(2025, 2, 3, 7, 30), datetime(2025, 3, 4)]
    assert [bool(r[10]) for r in rows] == [True, False, True]

    orders = workspace.rows(
        "SELECT o.external_id, c.external_id, o.placed_at, o.total, o.currency FROM orders o "
        "JOIN customers c ON c.id = o.customer_id ORDER BY o.external_id")
    assert [(o[0], o[1], _moment(o[2]), Decimal(str(o[3])), o[4]) for o in orders] == [
        ("O1", "C1", datetime(2026, 3, 1, 9), Decimal("19.90"), "EUR"),
        ("O2", "C2", datetime(2026, 4, 15, 10, 30), Decimal("24.00"), "EUR"),
        ("O3", "C1", datetime(2026, 5, 1), Decimal("3.15"), "GBP"),
    ]
    items = workspace.rows(
        "SELECT o.external_id, p.sku, i.quantity, i.unit_price FROM order_items i "
        "JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id "
        "ORDER BY o.external_id, p.sku")
    assert [(i[0], i[1], i[2], Decimal(str(i[3]))) for i in items] == [
        ("O1", "POT-02", 1, Decimal("12.90")), ("O1", "SEED-01", 2, Decimal("3.50")),
        ("O2", "SHEAR-03", 1, Decimal("24.00")), ("O3", "SEED-01", 1, Decimal("3.15"))]
    products = workspace.rows("SELECT sku, name, category, price, url, image_url FROM products "
                              "ORDER BY sku")
    assert [(p[0], p[1], p[2], Decimal(str(p[3])), p[4], p[5]) for p in products] == [
        ("POT-02", "Terracotta pot Ø20", "Garden", Decimal("12.90"), None,
         "https://shop.example/img/pot-02.jpg"),
        ("SEED-01", "Tomato seeds", "Garden", Decimal("3.50"), "https://shop.example/p/seed-01",
         None),
        ("SHEAR-03", "Pruning shears & holster", "Garden", Decimal("24.00"), None, None),
    ]


def test_extra_customer_columns_become_attributes_and_merge_on_reimport(workspace):
    imported(workspace, "customers", CUSTOMERS)
    result = imported(workspace, "customers",
                      "customer_id,email,first_name,last_name,loyalty\nC1,ann@example.com,Ann,"
                      "O'Brien,gold\n", name="update.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("update.csv: 0 new, 1 updated.\n")
    [(attributes,)] = workspace.rows("SELECT attributes FROM customers WHERE external_id = 'C1'")
    assert _json(attributes) == {"source": "web", "loyalty": "gold"}
    # Columns missing from the update file keep their values.
    assert workspace.rows("SELECT city, locale FROM customers WHERE external_id = 'C1'") == [
        ("Dublin", "en_IE")]


def test_reimport_of_an_updated_export_upserts(workspace):
    imported(workspace, "customers", CUSTOMERS)
    imported(workspace, "products", PRODUCTS)
    imported(workspace, "orders", ORDERS)
    changed = ORDERS.replace("O1,C1,2026-03-01T09:00:00Z,POT-02,1,12.90",
                             "O1,C1,2026-03-01T09:00:00Z,POT-02,3,12.90")
    changed += "O4,C2,2026-06-01,POT-02,1,12.90,,,\n"
    result = imported(workspace, "orders", changed)
    assert result.exit_code == 0, result.output
    assert "4 orders (1 new, 3 updated), 0 new products." in result.stdout
    totals = workspace.rows("SELECT external_id, total FROM orders ORDER BY external_id")
    assert [(t[0], Decimal(str(t[1]))) for t in totals] == [
        ("O1", Decimal("45.70")), ("O2", Decimal("24.00")), ("O3", Decimal("3.15")),
        ("O4", Decimal("12.90"))]
    assert workspace.rows("SELECT COUNT(*) FROM order_items") == [(5,)]
    assert workspace.rows("SELECT COUNT(*) FROM customers") == [(3,)]


def test_mapping_other_column_names(workspace):
    content = "Kundennummer;E-Mail;Vorname;Nachname\nK-7;eva@example.com;Eva;Šimić\n"
    result = imported(workspace, "customers", content, "--map", "customer_id=Kundennummer",
                      "--map", "email=E-Mail", "--map", "first_name=Vorname",
                      "--map", "last_name=Nachname")
    assert result.exit_code == 0, result.output
    assert workspace.rows("SELECT external_id, email, first_name, last_name, attributes "
                          "FROM customers")[0][:4] == ("K-7", "eva@example.com", "Eva", "Šimić")


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_delimiters_and_byte_order_mark(workspace, delimiter, bom):
    lines = ["customer_id,email,first_name,last_name", "C1,ann@example.com,Ann,Lee"]
    content = bom + "\r\n".join(line.replace(",", delimiter) for line in lines).encode() + b"\r\n"
    result = imported(workspace, "customers", content)
    assert result.exit_code == 0, result.output
    assert workspace.rows("SELECT external_id, email, last_name FROM customers") == [
        ("C1", "ann@example.com", "Lee")]


BAD_INPUT = [
    ("customers", "customer_id,email,first_name,last_name\nC1,,Ann,Lee\n",
     "customers.csv:2: missing value (column email)"),
    ("customers", "customer_id,email,first_name,last_name,birthday\nC1,a@example.com,A,B,"
                  "1990-02-30\n",
     "customers.csv:2: '1990-02-30' is not a date (column birthday); "
     "write it like 2026-03-01 or 2026-03-01T09:30:00Z"),
    ("customers", "customer_id,email,first_name,last_name,timezone\nC1,a@example.com,A,B,"
                  "Europe/Berlinn\n",
     "customers.csv:2: 'Europe/Berlinn' is not an IANA time zone (column timezone); "
     "write it like Europe/Berlin"),
    ("customers", "customer_id,email,first_name,last_name,subscribed\nC1,a@example.com,A,B,"
                  "maybe\n",
     "customers.csv:2: 'maybe' is not a yes/no value (column subscribed); write true or false"),
    ("customers", "customer_id,email,first_name,last_name,country\nC1,a@example.com,A,B,GER\n",
     "customers.csv:2: 'GER' is not a two-letter country code (column country); write it like DE"),
    ("customers", "customer_id,email,first_name,last_name\nC1,a@example.com,A,B\n"
                  "C1,b@example.com,B,C\n",
     "customers.csv:3: customer 'C1' already appears on line 2 (column customer_id)"),
    ("customers", "customer_id,email,first_name,last_name\nC1,a@example.com,A\n",
     "customers.csv:2: has 3 fields, the header has 4"),
    ("customers", "customer_id,email,first_name,last_name\n" + "C1,a@example.com," + "x" * 101
                  + ",B\n",
     "customers.csv:2: is 101 characters long, at most 100 fit (column first_name)"),
    ("products", "sku,name,category,price\nP1,Pot,Garden,12.345\n",
     "products.csv:2: '12.345' has more than 2 decimal places (column price)"),
    ("products", "sku,name,category,price\nP1,Pot,Garden,twelve\n",
     "products.csv:2: 'twelve' is not an amount (column price); write it like 12.90"),
    ("products", "sku,name,category,price,url\nP1,Pot,Garden,1.00,javascript:alert(1)\n",
     "products.csv:2: 'javascript:alert(1)' is not an http(s) URL (column url)"),
    ("orders", "order_id,customer_id,placed_at,sku,quantity,unit_price\n"
               "O1,C404,2026-01-01,P1,1,1.00\n",
     "orders.csv:2: unknown customer 'C404' (column customer_id); import customers first"),
    ("orders", "order_id,customer_id,placed_at,sku,quantity,unit_price\n"
               "O1,C1,2026-01-01,P1,0,1.00\n",
     "orders.csv:2: 0 is out of range (1 to 1000000) (column quantity)"),
    ("orders", "order_id,customer_id,placed_at,sku,quantity,unit_price\n"
               "O1,C1,13/25/2026,P1,1,1.00\n",
     "orders.csv:2: '13/25/2026' is not a valid date: month must be in 1..12 (column placed_at);"
     " for US-style MM/DD/YYYY dates pass --month-first"),
    ("orders", "order_id,customer_id,placed_at,sku,quantity,unit_price\n"
               "O1,C1,2026-01-01,P1,1,1.00\nO1,C1,2026-01-02,P2,1,1.00\n",
     "orders.csv:3: order 'O1' differs from its line 2 in customer, date or currency "
     "(columns customer_id, placed_at)"),
]


@pytest.mark.parametrize(("kind", "content", "message"), BAD_INPUT,
                         ids=[case[2].split(": ", 1)[1][:40] for case in BAD_INPUT])
def test_bad_row_fails_the_whole_import_with_its_location(workspace, kind, content, message):
    imported(workspace, "customers", "customer_id,email,first_name,last_name\n"
                                     "C1,c1@example.com,A,B\n", name="known.csv")
    before = _snapshot(workspace)
    result = imported(workspace, kind, content)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == str(workspace.root / message.split(":")[0]) + message[len(
        message.split(":")[0]):]
    assert lines[-1].startswith(f"Error: {workspace.root / (kind + '.csv')}: 1 bad line, "
                                "nothing was imported; fix the lines listed above, or pass "
                                "--skip-bad-rows")
    assert _snapshot(workspace) == before


def test_all_bad_lines_are_listed_and_nothing_is_written(workspace):
    content = CUSTOMERS + "C4,d@example.com,D,E,Deutsch,,,,,,,\nC5,e@example.com,E,F,,,,,,,nope,\n"
    result = imported(workspace, "customers", content)
    assert result.exit_code == 1
    path = workspace.root / "customers.csv"
    assert result.stderr.splitlines() == [
        f"{path}:5: 'Deutsch' is not a locale (column locale); write it like de_DE or en",
        f"{path}:6: 'nope' is not a yes/no value (column subscribed); write true or false",
        f"Error: {path}: 2 bad lines, nothing was imported; fix the lines listed above, or pass "
        "--skip-bad-rows to import the good rows and list the bad ones",
    ]
    assert workspace.rows("SELECT COUNT(*) FROM customers") == [(0,)]


def test_skip_bad_rows_imports_the_rest_and_lists_every_skipped_line(workspace):
    imported(workspace, "customers", CUSTOMERS)
    content = ORDERS + "O5,C1,2026-07-01,SEED-01,x,3.50,,,\nO5,C1,2026-07-01,POT-02,1,12.90,,,\n"
    result = imported(workspace, "orders", content, "--skip-bad-rows")
    assert result.exit_code == 0, result.output
    path = workspace.root / "orders.csv"
    assert result.stderr.splitlines() == [
        f"{path}:6: 'x' is not a whole number (column quantity)",
        f"{path}:7: skipped with order 'O5' (line 6 is bad)",
    ]
    assert result.stdout == (f"Imported 4 order lines from {path}: 3 orders (3 new, 0 updated), "
                             "3 new products; skipped 2 lines (listed above).\n")
    assert workspace.rows("SELECT external_id FROM orders ORDER BY external_id") == [
        ("O1",), ("O2",), ("O3",)]


def test_missing_columns_and_bad_mapping_are_explained(workspace):
    result = imported(workspace, "customers", "id,mail\n1,a@example.com\n")
    path = workspace.root / "customers.csv"
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {path}:1: missing columns customer_id, email, first_name, "
                             "last_name; columns in this file: id, mail; map yours with --map "
                             "customer_id=YourColumn\n")
    result = workspace.run("import", "customers", str(path), "--map", "mail=mail")
    assert result.stderr == f"Error: {path}: --map names unknown field 'mail'; did you mean " \
                            "'email'?\n"
    result = workspace.run("import", "customers", str(path), "--map", "email=E-Mail")
    assert result.stderr == (f"Error: {path}:1: no column 'E-Mail' for --map email=E-Mail; "
                             "columns in this file: id, mail\n")
    result = workspace.run("import", "customers", str(path), "--map", "email")
    assert result.exit_code == 2
    assert "'email' is not field=Column" in result.stderr


def test_unreadable_files_are_explained(workspace):
    missing = workspace.root / "nope.csv"
    result = workspace.run("import", "customers", str(missing))
    assert (result.exit_code, result.stderr) == (1, f"Error: {missing}: no such file; "
                                                    "check the path\n")
    latin1 = workspace.write("latin1.csv", "customer_id,email,first_name,last_name\n"
                             "C1,a@example.com,Zoë,B\n".encode("latin-1"))
    result = workspace.run("import", "customers", str(latin1))
    assert result.stderr == (f"Error: {latin1}:2: not UTF-8 text (byte 0xeb at column 20); save "
                             "the file as UTF-8 (in Excel: 'CSV UTF-8') and import again\n")
    broken = workspace.write("broken.csv", 'order_id,customer_id,placed_at,sku,quantity,'
                             'unit_price\nO1,C1,2026-01-01,P1,1,1.00\n"O2,C1\n')
    result = workspace.run("import", "orders", str(broken))
    assert result.stderr == (f"Error: {broken}:3: broken CSV: unexpected end of data; check the "
                             "quotes on this line\n")
    empty = workspace.write("empty.csv", "")
    result = workspace.run("import", "customers", str(empty))
    assert result.stderr == (f"Error: {empty}:1: the file is empty; a header row is expected; "
                             "export the data with its column names\n")


def test_month_first_reads_us_dates(workspace):
    imported(workspace, "customers", CUSTOMERS)
    content = ("order_id,customer_id,placed_at,sku,quantity,unit_price\n"
               "O9,C1,03/04/2026 14:05,SEED-01,1,3.50\n")
    assert imported(workspace, "orders", content, "--month-first").exit_code == 0
    [(placed_at,)] = workspace.rows("SELECT placed_at FROM orders")
    assert _moment(placed_at) == datetime(2026, 3, 4, 14, 5)


def _snapshot(workspace) -> list:
    return [workspace.rows(f"SELECT * FROM {table} ORDER BY id")
            for table in ("customers", "products", "orders", "order_items")]


def _day(value) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _moment(value) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _json(value):
    import json
    return json.loads(value) if isinstance(value, str) else value


def test_empty_cells_of_required_columns_get_their_defaults_on_insert_and_update(workspace):
    header = "customer_id,email,first_name,last_name,subscribed\n"
    imported(workspace, "customers", header + "C1,a@example.com,Ann,Lee,no\n")
    result = imported(workspace, "customers", header + "C1,a@example.com,,,\nC2,b@example.com,,,\n")
    assert result.exit_code == 0, result.output
    rows = workspace.rows("SELECT external_id, first_name, last_name, subscribed FROM customers "
                          "ORDER BY external_id")
    assert [(r[0], r[1], r[2], bool(r[3])) for r in rows] == [("C1", "", "", True),
                                                             ("C2", "", "", True)]
