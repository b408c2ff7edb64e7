"""A deterministic sample purchase history: customers.csv, products.csv and orders.csv.

One seeded `random.Random` drives everything, so the same (customers, seed, until) always
gives byte-identical files. Customers are streamed one at a time; memory stays flat.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate
from pathlib import Path
from typing import TypeVar

CUSTOMER_COLUMNS = ("customer_id", "email", "first_name", "last_name", "locale", "timezone",
                    "country", "city", "birthday", "signed_up_at", "subscribed", "source")
PRODUCT_COLUMNS = ("sku", "name", "category", "price", "url", "image_url")
ORDER_COLUMNS = ("order_id", "customer_id", "placed_at", "sku", "quantity", "unit_price",
                 "product_name", "category", "currency")
SHOP_URL = "https://greenshop.example"
PROGRESS_EVERY = 10_000

_DAY = 86_400
_EPOCH = datetime(1970, 1, 1)
_T = TypeVar("_T")

# code: locale, weight, cities ("City=Zone" overrides the default zone), first names, last names
_COUNTRY_TABLE = {
    "DE": ("de_DE", 20, "Europe/Berlin:Berlin,Hamburg,München,Köln,Frankfurt am Main,Leipzig,"
           "Dresden,Freiburg im Breisgau",
           "Jürgen,Lena,Lukas,Sophie,Maximilian,Hannah,Jonas,Björn,Jörg,Katrin,Leonie,Günter,Zoë",
           "Müller,Schmidt,Schneider,Fischer,Weber,Meyer,Wagner,Schäfer,Koch,Groß,Krüger,Köhler,"
           "Weiß,Hoffmann"),
    "FR": ("fr_FR", 12, "Europe/Paris:Paris,Lyon,Marseille,Toulouse,Nantes,Bordeaux,Lille,"
           "Strasbourg",
           "Zoë,Renée,Chloé,Hélène,Éloïse,François,Jérôme,Léa,Théo,Amélie,Gaël,Céline,Noël,Camille",
           "Dubois,Martin,Bernard,Lefèvre,Moreau,Girard,Rousseau,Mercier,Fontaine,D'Arcy,Lemaître,"
           "Faure,Bonnet"),
    "ES": ("es_ES", 8, "Europe/Madrid:Madrid,Barcelona,Valencia,Sevilla,Bilbao,Málaga,"
           "Las Palmas de Gran Canaria=Atlantic/Canary",
           "José,María,Jesús,Lucía,Álvaro,Sofía,Martín,Inés,Raúl,Begoña,Íñigo,Pilar,Javier",
           "García,Fernández,González,Rodríguez,López,Martínez,Sánchez,Pérez,Gómez,Muñoz,"
           "Jiménez,Núñez,Ibáñez"),
    "IT": ("it_IT", 8, "Europe/Rome:Roma,Milano,Napoli,Torino,Bologna,Firenze,Palermo",
           "Giulia,Francesco,Alessandro,Chiara,Lorenzo,Martina,Niccolò,Matteo,Federica,Elena,"
           "Giuseppe,Andrea",
           "Rossi,Russo,Ferrari,Esposito,Bianchi,Romano,Colombo,Ricci,D'Angelo,D'Amico,Conti,"
           "De Luca,Mancini,Lombardi"),
    "PL": ("pl_PL", 6, "Europe/Warsaw:Warszawa,Kraków,Łódź,Wrocław,Poznań,Gdańsk",
           "Łukasz,Małgorzata,Wojciech,Agnieszka,Katarzyna,Paweł,Michał,Zofia,Jakub,Grzegorz,Dorota",
           "Kowalski,Nowak,Wiśniewski,Wójcik,Kamiński,Lewandowski,Zieliński,Szymański,Woźniak,"
           "Dąbrowski,Kozłowski"),
    "NL": ("nl_NL", 7, "Europe/Amsterdam:Amsterdam,Rotterdam,Den Haag,Utrecht,Eindhoven,Groningen",
           "Daan,Sem,Lotte,Fleur,Bram,Sanne,Ruben,Eva,Joris,Maartje,Thijs,Noor,Femke,Sjoerd",
           "de Jong,Jansen,de Vries,van den Berg,van Dijk,Bakker,Visser,Smit,Meijer,de Boer,Mulder,"
           "Bos,Dekker"),
    "IE": ("en_IE", 4, "Europe/Dublin:Dublin,Cork,Galway,Limerick,Waterford",
           "Siobhán,Aoife,Niamh,Seán,Ciarán,Pádraig,Róisín,Éamonn,Caoimhe,Oisín,Conor,Saoirse,Orla",
           "O'Brien,O'Sullivan,Murphy,Kelly,O'Connor,Walsh,Byrne,Ryan,O'Neill,McCarthy,Doyle,"
           "Fitzgerald"),
    "GB": ("en_GB", 12, "Europe/London:London,Manchester,Birmingham,Edinburgh,Glasgow,Bristol,"
           "Leeds",
           "Oliver,Amelia,Harry,Isla,George,Charlotte,Jack,Emily,Thomas,Sophie,William,Grace,Chloë",
           "Smith,Jones,Taylor,Brown,Williams,Wilson,Evans,Roberts,Walker,Wright,Hughes,O'Neill,"
           "Clarke"),
    "US": ("en_US", 14, "America/New_York:New York,Boston,Atlanta,Chicago=America/Chicago,"
           "Austin=America/Chicago,Denver=America/Denver,Phoenix=America/Phoenix,"
           "Los Angeles=America/Los_Angeles,San Francisco=America/Los_Angeles,"
           "Seattle=America/Los_Angeles",
           "James,Mary,Michael,Jennifer,Emma,Liam,Olivia,Noah,Ava,Ethan,Madison,Tyler,Zoë,Andrés",
           "Smith,Johnson,Williams,Brown,Jones,Miller,Davis,García,Rodriguez,Anderson,Thompson,"
           "O'Connor,D'Angelo,Nguyen"),
    "SE": ("sv_SE", 3, "Europe/Stockholm:Stockholm,Göteborg,Malmö,Uppsala",
           "Åsa,Björn,Linnéa,Märta,Oskar,Elin,Göran,Astrid,Erik,Ingrid,Måns,Saga",
           "Andersson,Johansson,Karlsson,Nilsson,Eriksson,Larsson,Öberg,Lindström,Åkesson,Sjöberg"),
    "DK": ("da_DK", 2, "Europe/Copenhagen:København,Aarhus,Odense,Aalborg",
           "Søren,Mette,Mads,Freja,Rasmus,Ida,Kasper,Sofie,Jørgen",
           "Ørsted,Jensen,Nielsen,Hansen,Pedersen,Andersen,Sørensen,Møller"),
    "TR": ("tr_TR", 2, "Europe/Istanbul:İstanbul,Ankara,İzmir,Antalya,Bursa",
           "Ayşe,Elif,Zeynep,Mehmet,Mustafa,Emre,Burak,Gökhan,Özlem,Şule,Çağla,İbrahim",
           "Yılmaz,Kaya,Demir,Şahin,Çelik,Yıldız,Öztürk,Aydın,Arslan,Doğan,Kılıç,Koç"),
    "VN": ("vi_VN", 2, "Asia/Ho_Chi_Minh:Hà Nội,Thành phố Hồ Chí Minh,Đà Nẵng,Hải Phòng,Huế",
           "Anh,Bảo,Châu,Dũng,Hương,Linh,Minh,Ngọc,Phương,Quân,Thảo,Trang,Tuấn",
           "Nguyễn,Trần,Lê,Phạm,Hoàng,Huỳnh,Phan,Vũ,Võ,Đặng,Bùi,Đỗ"),
}
_CURRENCY = {"GB": "GBP", "US": "USD"}  # everyone else pays in EUR

_CATEGORY_OF = {"SEED": "Garden", "GARD": "Garden", "KITC": "Kitchen", "HOME": "Home",
                "OUTD": "Outdoor", "BOOK": "Books", "GIFT": "Gifts"}
_PRODUCT_TABLE = """
SEED-01|Tomato Seed Packet|3.50; SEED-02|Basil Seed Packet|2.90
SEED-03|Jalapeño Seed Packet|3.20; SEED-04|Wildflower Seed Mix|4.50
SEED-05|Sunflower Seed Packet|2.90; SEED-06|Carrot Seed Packet|2.50
SEED-07|Lettuce Seed Packet|2.50; SEED-08|Sweet Pea Seed Packet|3.20
GARD-001|Hand Trowel|12.90; GARD-002|Digging Fork|24.90
GARD-003|Pruning Shears|19.90; GARD-004|Watering Can 10 l|22.50
GARD-005|Gardening Gloves|9.90; GARD-006|Seed Starter Tray|7.90
GARD-007|Potting Soil 20 l|8.50; GARD-008|Terracotta Pots & Saucers (Set of 3)|18.90
GARD-009|Raised Bed Kit|89.00; GARD-010|Compost Bin|49.00
GARD-011|Plant Labels (50)|4.90; GARD-012|Garden Kneeler|16.90
KITC-001|Chef's Knife 20 cm|59.00; KITC-002|Oak Cutting Board|34.90
KITC-003|Cast Iron Skillet|44.90; KITC-004|Crème Brûlée Ramekins (Set of 4)|16.90
KITC-005|Salt & Pepper Mills|29.90; KITC-006|Linen Tea Towels (2)|14.90
KITC-007|Herb Scissors|11.90; KITC-008|Café Espresso Cups (Set of 2)|19.90
KITC-009|Enamel Dutch Oven|79.00; KITC-010|Olive Wood Spoons|15.90
HOME-001|Soy Candle "Fig & Cedar"|18.50; HOME-002|Wool Throw Blanket|69.00
HOME-003|Ceramic Vase|27.90; HOME-004|Linen Cushion Cover|24.90
HOME-005|Macramé Plant Hanger|17.90; HOME-006|Coir Doormat|21.90
HOME-007|Reed Diffuser|22.90; HOME-008|Wall Planter|29.90
OUTD-001|Camping Hammock|39.90; OUTD-002|Insulated Bottle 750 ml|24.90
OUTD-003|Picnic Blanket|34.90; OUTD-004|Folding Camp Chair|45.00
OUTD-005|Solar Lantern|19.90; OUTD-006|Bird Feeder|22.90
OUTD-007|Insect Hotel|27.90; OUTD-008|Fire Pit Bowl|119.00
BOOK-001|The Kitchen Garden Year|24.00; BOOK-002|Grow Your Own Herbs|16.00
BOOK-003|Seasonal Cooking: Spring & Summer|29.00; BOOK-004|The Small Balcony Garden|19.00
BOOK-005|Foraging Field Guide|22.00; BOOK-006|Bees, Birds & Butterflies|18.00
GIFT-001|Gift Card 25|25.00; GIFT-002|Gift Card 50|50.00
GIFT-003|Gardener's Gift Box|49.00; GIFT-004|Herb Garden Starter Kit|34.90
GIFT-005|Advent Calendar of Seeds|29.90; GIFT-006|Personalised Plant Marker|12.90
GIFT-007|Lavender Sachets (Set of 3)|14.90; GIFT-008|Après-Garden Hand Cream|12.50
"""
# Products often bought together; every product is in at least one group.
_BUNDLES = (
    "SEED-01 SEED-03 SEED-06 SEED-07 GARD-006 GARD-007 GARD-011 BOOK-001",
    "SEED-01 SEED-02 GARD-001 GARD-005 GARD-008 BOOK-002 GIFT-004 KITC-007",
    "SEED-04 SEED-05 SEED-08 OUTD-006 OUTD-007 BOOK-006 GARD-004",
    "GARD-001 GARD-002 GARD-003 GARD-004 GARD-005 GARD-012",
    "GARD-009 GARD-010 GARD-007 GARD-002 BOOK-004 HOME-008",
    "KITC-001 KITC-002 KITC-007 KITC-010 KITC-006",
    "KITC-003 KITC-009 KITC-010 BOOK-003",
    "KITC-004 KITC-008 KITC-005 KITC-006 HOME-001",
    "HOME-001 HOME-007 HOME-002 HOME-004 HOME-006",
    "HOME-005 HOME-008 HOME-003 GARD-008",
    "OUTD-001 OUTD-002 OUTD-003 OUTD-004 OUTD-005 OUTD-008 BOOK-005",
    "GIFT-001 GIFT-002 GIFT-003 GIFT-005 GIFT-006 GIFT-007 GIFT-008 SEED-04",
)
# category: popularity, monthly multipliers January..December
_SEASONS = {
    "Garden": (3.0, (0.4, 0.7, 2.0, 3.0, 3.0, 2.2, 1.2, 0.8, 0.7, 0.5, 0.4, 0.4)),
    "Kitchen": (2.0, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.3, 1.6)),
    "Home": (1.5, (1.2, 1.0, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 1.0, 1.2, 1.4, 1.5)),
    "Outdoor": (1.2, (0.4, 0.4, 0.7, 1.0, 1.7, 2.8, 3.0, 2.6, 1.3, 0.7, 0.5, 0.5)),
    "Books": (1.0, (1.2, 1.1, 1.1, 1.0, 0.9, 0.9, 0.9, 0.9, 1.0, 1.1, 1.3, 1.6)),
    "Gifts": (1.0, (0.5, 0.8, 0.6, 0.6, 0.9, 0.6, 0.5, 0.5, 0.6, 0.9, 2.5, 5.0)),
}
_VOLUME = (0.8, 0.8, 1.1, 1.3, 1.3, 1.1, 0.9, 0.8, 0.9, 1.0, 1.3, 1.6)  # orders per month
_PEAK = max(_VOLUME)
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "inbox.example")
_EMAIL_FORMATS = ("{f}.{s}", "{f}.{s}", "{f}{s}", "{f}_{s}", "{i}.{s}", "{s}.{f}")
_SOURCES = ("web", "store", "instagram", "referral", "newsletter")
_SOURCE_CUM = tuple(accumulate((50, 15, 15, 10, 10)))
_SIZE_CUM = tuple(accumulate((50, 25, 13, 8, 4)))  # lines per order: 1..5
_QUANTITY_CUM = tuple(accumulate((82, 11, 5, 2)))  # quantity: 1..4
_TRANSLIT = str.maketrans({"ß": "ss", "Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D",
                           "đ": "d", "ı": "i", "Æ": "AE", "æ": "ae"})


@dataclass(frozen=True)
class SampleSummary:
    """How many rows generate() wrote."""

    customers: int
    products: int
    orders: int
    order_lines: int


@dataclass(frozen=True)
class _Country:
    code: str
    locale: str
    currency: str
    cities: tuple[tuple[str, str], ...]  # (city, time zone)
    first: tuple[tuple[str, str], ...]  # (name, ASCII form)
    last: tuple[tuple[str, str], ...]


@dataclass(frozen=True, eq=False)  # compared by identity
class _Product:
    sku: str
    name: str
    category: str
    price: str
    discounted: tuple[str, ...]  # 10, 15 and 20 % off


def _ascii(name: str) -> str:
    """Lower-case ASCII letters of a name: 'Łukasz' -> 'lukasz', "O'Brien" -> 'obrien'."""
    plain = unicodedata.normalize("NFKD", name.translate(_TRANSLIT)).lower()
    return "".join(ch for ch in plain if ch.isascii() and ch.isalnum())


def _country(code: str, locale: str, cities: str, first: str, last: str) -> _Country:
    zone, _, names = cities.partition(":")
    split = (place.partition("=") for place in names.split(","))
    places = tuple((city, tz or zone) for city, _, tz in split)
    return _Country(code, locale, _CURRENCY.get(code, "EUR"), places,
                    tuple((n, _ascii(n)) for n in first.split(",")),
                    tuple((n, _ascii(n)) for n in last.split(",")))


def _product(item: str) -> _Product:
    sku, name, price = item.split("|")
    off = (Decimal(price) * (100 - p) / 100 for p in (10, 15, 20))
    return _Product(sku, name, _CATEGORY_OF[sku[:4]], price,
                    tuple(str(d.quantize(Decimal("0.01"), ROUND_HALF_UP)) for d in off))


_COUNTRIES = tuple(_country(code, loc, *rest) for code, (loc, _, *rest) in _COUNTRY_TABLE.items())
_COUNTRY_CUM = tuple(accumulate(weight for _, weight, *_ in _COUNTRY_TABLE.values()))
_PRODUCTS = tuple(_product(item) for item in _PRODUCT_TABLE.replace("\n", "; ").split("; ")
                  if item)
_BY_SKU = {p.sku: p for p in _PRODUCTS}
_COMPANIONS = {p.sku: tuple(dict.fromkeys(_BY_SKU[s] for b in _BUNDLES if p.sku in b.split()
                                          for s in b.split() if s != p.sku)) for p in _PRODUCTS}


def _popularity(p: _Product) -> float:
    return _SEASONS[p.category][0] / float(p.price) ** 0.5  # cheap things sell more often


_MONTH_CUM = tuple(tuple(accumulate(_popularity(p) * _SEASONS[p.category][1][m] for p in _PRODUCTS))
                   for m in range(12))
_FAVOURITES = tuple(
    (items, tuple(accumulate(_popularity(p) for p in items)))
    for items in (tuple(p for p in _PRODUCTS if p.category == c) for c in _SEASONS))
_FAVOURITE_CUM = tuple(accumulate(weight for weight, _ in _SEASONS.values()))


def _pick(rng: random.Random, items: Sequence[_T], cum: Sequence[float]) -> _T:
    return items[bisect(cum, rng.random() * cum[-1])]


def _iso(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat() + "Z"


def _email(rng: random.Random, first: str, last: str, used: dict[str, int]) -> str:
    """A unique address; a number is appended when the plain form is taken, ~0.5 % are broken."""
    local = rng.choice(_EMAIL_FORMATS).format(f=first, s=last, i=first[0])
    domain = rng.choice(_DOMAINS)
    key = f"{local}@{domain}"
    used[key] = count = used.get(key, 0) + 1
    email = key if count == 1 else f"{local}{count}@{domain}"  # locals never end in a digit
    if rng.random() < 0.005:
        email = email.replace("@", "" if rng.random() < 0.5 else " @")
    return email


def _customer(rng: random.Random, number: int, now: int,
              used: dict[str, int]) -> tuple[list[str], _Country, int]:
    """One customers.csv row, the customer's country and sign-up time."""
    country = _pick(rng, _COUNTRIES, _COUNTRY_CUM)
    city, zone = rng.choice(country.cities)
    first, first_ascii = rng.choice(country.first)
    last, last_ascii = rng.choice(country.last)
    email = _email(rng, first_ascii, last_ascii, used)
    birthday = ""
    if rng.random() < 0.7:
        age = timedelta(days=rng.randrange(18 * 365, 85 * 365))
        birthday = (_EPOCH.date() + timedelta(days=now // _DAY) - age).isoformat()
    years = 2 if rng.random() < 0.85 else 4  # some old customers
    signed_up = now - rng.randrange(1, years * 365 * _DAY)
    row = [f"C{number:07d}", email, first, last, country.locale, zone, country.code, city,
           birthday, _iso(signed_up), "true" if rng.random() < 0.92 else "false",
           _pick(rng, _SOURCES, _SOURCE_CUM)]
    return row, country, signed_up


def _busy(rng: random.Random, moment: int) -> bool:
    """Thinning by month: keep a candidate order time with probability volume / peak."""
    return rng.random() * _PEAK < _VOLUME[(_EPOCH + timedelta(seconds=moment)).month - 1]


def _order_times(rng: random.Random, signed_up: int, now: int) -> list[int]:
    """Sorted order times: never (25 %), once, twice, repeat, or repeat but lapsed."""
    kind = rng.random()
    if kind < 0.25:
        return []
    if kind < 0.57:  # one order, mostly soon after signing up
        while True:
            moment = signed_up + int(rng.expovariate(1 / (10 * _DAY)))
            if moment >= now:
                moment = rng.randrange(signed_up, now)
            if _busy(rng, moment):
                return [moment]
    count = 2 if kind < 0.67 else 3 + min(17, int(rng.expovariate(1 / 8)))
    lapsed = kind >= 0.85  # the last order is 120-400 days ago
    end = now - rng.randrange(120 * _DAY, 400 * _DAY) if lapsed else now
    # Orders spread over the customer's history, at least two weeks apart on average.
    gap = max(14 * _DAY, rng.uniform(0.5, 1.0) * (end - signed_up) / count)
    moment = end if lapsed else now - 1 - int(rng.expovariate(1 / gap))
    if moment < signed_up:
        moment = rng.randrange(signed_up, now)
    times = [moment]
    while len(times) < count:  # walk back in time; _busy keeps PEAK / gap of the candidates
        moment -= int(rng.expovariate(_PEAK / gap))
        if moment < signed_up:
            break
        if _busy(rng, moment):
            times.append(moment)
    return times[::-1]


def _basket(rng: random.Random, month: int,
            favourite: tuple[Sequence[_Product], Sequence[float]]) -> list[_Product]:
    """1-5 distinct products; extra lines often come from the first items' companions."""
    size = bisect(_SIZE_CUM, rng.random() * _SIZE_CUM[-1]) + 1
    seasonal = _MONTH_CUM[month - 1]
    first = _pick(rng, *favourite) if rng.random() < 0.35 else _pick(rng, _PRODUCTS, seasonal)
    basket = [first]
    for _ in range(3 * size):
        if len(basket) == size:
            break
        if rng.random() < 0.6:
            product = rng.choice(_COMPANIONS[rng.choice(basket).sku])
        else:
            product = _pick(rng, _PRODUCTS, seasonal)
        if product not in basket:
            basket.append(product)
    return basket


def _write_products(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(PRODUCT_COLUMNS)
        for p in _PRODUCTS:
            slug = p.sku.lower()
            writer.writerow((p.sku, p.name, p.category, p.price, f"{SHOP_URL}/products/{slug}",
                             f"{SHOP_URL}/img/{slug}.jpg"))


def generate(out_dir: Path, customers: int = 2000, seed: int = 42, until: date = date(2026, 11, 1),
             progress: Callable[[int], None] | None = None) -> SampleSummary:
    """Write customers.csv, products.csv and orders.csv into out_dir (created if missing)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_products(out_dir / "products.csv")
    rng = random.Random(seed)
    now = (until - _EPOCH.date()).days * _DAY
    used: dict[str, int] = {}
    orders = lines = reported = 0
    with (out_dir / "customers.csv").open("w", encoding="utf-8", newline="") as people, \
            (out_dir / "orders.csv").open("w", encoding="utf-8", newline="") as sales:
        people_csv = csv.writer(people, lineterminator="\n")
        sales_csv = csv.writer(sales, lineterminator="\n")
        people_csv.writerow(CUSTOMER_COLUMNS)
        sales_csv.writerow(ORDER_COLUMNS)
        for number in range(1, customers + 1):
            row, country, signed_up = _customer(rng, number, now, used)
            people_csv.writerow(row)
            favourite = _pick(rng, _FAVOURITES, _FAVOURITE_CUM)
            for moment in _order_times(rng, signed_up, now):
                orders += 1
                order_id, placed = f"O{orders:08d}", _EPOCH + timedelta(seconds=moment)
                placed_at = placed.isoformat() + "Z"
                for p in _basket(rng, placed.month, favourite):
                    quantity = bisect(_QUANTITY_CUM, rng.random() * _QUANTITY_CUM[-1]) + 1
                    price = rng.choice(p.discounted) if rng.random() < 0.06 else p.price
                    sales_csv.writerow((order_id, row[0], placed_at, p.sku, quantity, price,
                                        p.name, p.category, country.currency))
                    lines += 1
            if progress and (number % PROGRESS_EVERY == 0 or number == customers):
                progress(number - reported)
                reported = number
    return SampleSummary(customers, len(_PRODUCTS), orders, lines)
