"""Reference data the demo draws from: eligible countries and their currencies, lenders, ICAs, sectors, towns.

Every name is invented for the demo (no real organization's figures); countries, currencies and the CFA peg are
real. The FX starting points are rounded real-world orders of magnitude (CAD per unit), not quotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# the lenders' local currencies and the eligible countries that use them (25 countries, 8 currencies)
COUNTRIES_BY_CURRENCY: dict[str, tuple[str, ...]] = {
    "XOF": ("SN", "BF", "ML", "CI", "BJ", "TG", "NE", "GW"),
    "XAF": ("CM", "TD", "CG", "GA", "CF", "GQ"),
    "USD": ("EC", "SV", "PA", "KH", "TL", "ZW"),
    "HTG": ("HT",),
    "PEN": ("PE",),
    "BOB": ("BO",),
    "GTQ": ("GT",),
    "VND": ("VN",),
}
CURRENCY_OF = {country: currency for currency, countries in COUNTRIES_BY_CURRENCY.items() for country in countries}

# rates imported as CSV (CAD per unit, the start of a random walk); XOF and XAF derive from EUR at the peg
FX_START: dict[str, Decimal] = {
    "EUR": Decimal("1.46"),
    "USD": Decimal("1.34"),
    "HTG": Decimal("0.0102"),
    "PEN": Decimal("0.358"),
    "BOB": Decimal("0.194"),
    "GTQ": Decimal("0.174"),
    "VND": Decimal("0.0000535"),
}
FX_SOURCE = "Bank of Canada (demo)"
EUR_PER_CFA = Decimal("655.957")  # XOF and XAF per EUR

# a loan's amount is rounded to this step of its currency, as a lender would
AMOUNT_STEP: dict[str, Decimal] = {
    "XOF": Decimal(50_000),
    "XAF": Decimal(50_000),
    "VND": Decimal(5_000_000),
    "HTG": Decimal(10_000),
    "USD": Decimal(500),
    "PEN": Decimal(1_000),
    "BOB": Decimal(1_000),
    "GTQ": Decimal(1_000),
}
# nominal annual rates a local lender charges, by currency (percent)
RATE_RANGE: dict[str, tuple[int, int]] = {
    "XOF": (8, 12),
    "XAF": (9, 13),
    "USD": (9, 14),
    "HTG": (14, 20),
    "PEN": (11, 16),
    "BOB": (8, 12),
    "GTQ": (11, 16),
    "VND": (7, 11),
}


@dataclass(frozen=True)
class LenderSpec:
    name: str
    institution_type: str
    country: str
    currency: str
    code: str  # the prefix of its own transaction ids
    guarantee_facility: bool


LENDERS: tuple[LenderSpec, ...] = (
    LenderSpec("Caisse Solidaire de Thiès", "credit_union", "SN", "XOF", "CST", True),
    LenderSpec("Mutuelle d'Épargne du Kadiogo", "microfinance_institution", "BF", "XOF", "MEK", True),
    LenderSpec("Banque Sahélienne de l'Économie Sociale", "bank", "ML", "XOF", "BSE", True),
    LenderSpec("Réseau des Caisses Lagunaires", "credit_union", "CI", "XOF", "RCL", False),
    LenderSpec("Coopérative d'Épargne du Mono", "credit_union", "BJ", "XOF", "CEM", True),
    LenderSpec("Caisse Villageoise du Littoral", "microfinance_institution", "CM", "XAF", "CVL", True),
    LenderSpec("Banque de l'Ouham pour l'Agriculture", "bank", "TD", "XAF", "BOA", False),
    LenderSpec("Mutuelle du Bassin du Congo", "credit_union", "CG", "XAF", "MBC", True),
    LenderSpec("Cooperativa de Ahorro Sierra Andina", "credit_union", "EC", "USD", "CSA", True),
    LenderSpec("Financiera Solidaria del Pacífico", "microfinance_institution", "SV", "USD", "FSP", True),
    LenderSpec("Mekong Community Finance", "microfinance_institution", "KH", "USD", "MCF", True),
    LenderSpec("Zambezi Cooperative Bank", "bank", "ZW", "USD", "ZCB", False),
    LenderSpec("Kès Popilè Latibonit", "credit_union", "HT", "HTG", "KPL", True),
    LenderSpec("Fonds Agricole du Plateau Central", "microfinance_institution", "HT", "HTG", "FAP", False),
    LenderSpec("Caja Rural del Altiplano", "microfinance_institution", "PE", "PEN", "CRA", True),
    LenderSpec("Cooperativa Inka Ahorro", "credit_union", "PE", "PEN", "CIA", True),
    LenderSpec("Banco Comunal de los Valles", "bank", "BO", "BOB", "BCV", True),
    LenderSpec("Fondo Solidario Chiquitano", "microfinance_institution", "BO", "BOB", "FSC", False),
    LenderSpec("Cooperativa Maya de Crédito", "credit_union", "GT", "GTQ", "CMC", True),
    LenderSpec("Quỹ Tín dụng Nhân dân Đồng Tháp", "credit_union", "VN", "VND", "QTD", True),
)

# Quebec international cooperation organizations (invented names)
ICA_NAMES: tuple[str, ...] = (
    "Solidarité Laurentides–Sahel",
    "Coopération Mauricie Sud",
    "Alliance Québec–Andes",
    "Entraide Outaouais International",
    "Fondation Saguenay pour le développement",
    "Carrefour Estrie–Afrique",
    "Réseau Gaspésie Solidaire",
    "Développement Lanaudière Monde",
    "Oeuvre Montérégie Sans Frontières",
    "Collectif Bas-Saint-Laurent International",
    "Mission Abitibi Coopération",
    "Cercle Charlevoix–Haïti",
    "Partenariat Beauce–Mékong",
    "Action Laval Solidarité",
    "Union Chaudière–Appalaches Monde",
    "Horizon Nord Coopération",
    "Les Ponts de Lévis",
    "Semences Solidaires Québec",
    "Tissage Coopératif International",
    "Maison Québec–Amérique centrale",
    "Ruches du Monde Québec",
    "Équité Café Québec",
    "Agronomes Solidaires du Québec",
    "Femmes Bâtisseuses International",
    "Eau Vive Coopération",
    "Artisans du Commerce Juste",
    "Jeunesse Québec–Afrique de l'Ouest",
    "Pêcheurs Solidaires International",
    "Terre et Partage",
    "Forêts Communautaires Québec",
)

TOWNS: dict[str, tuple[str, ...]] = {
    "SN": ("Thiès", "Kaolack", "Ziguinchor", "Louga"),
    "BF": ("Koudougou", "Bobo-Dioulasso", "Kaya", "Dédougou"),
    "ML": ("Ségou", "Sikasso", "Mopti", "Koutiala"),
    "CI": ("Bouaké", "Daloa", "Korhogo", "Man"),
    "BJ": ("Parakou", "Abomey", "Natitingou", "Lokossa"),
    "TG": ("Kpalimé", "Sokodé", "Atakpamé", "Dapaong"),
    "NE": ("Maradi", "Zinder", "Tahoua", "Dosso"),
    "GW": ("Bafatá", "Gabú", "Cacheu", "Buba"),
    "CM": ("Bafoussam", "Bamenda", "Ngaoundéré", "Ebolowa"),
    "TD": ("Moundou", "Sarh", "Abéché", "Doba"),
    "CG": ("Dolisie", "Nkayi", "Owando", "Impfondo"),
    "GA": ("Oyem", "Lambaréné", "Mouila", "Franceville"),
    "CF": ("Bambari", "Berbérati", "Bossangoa", "Bouar"),
    "GQ": ("Ebebiyín", "Mongomo", "Evinayong", "Luba"),
    "EC": ("Riobamba", "Cuenca", "Loja", "Otavalo"),
    "SV": ("Chalatenango", "Usulután", "Suchitoto", "Ahuachapán"),
    "PA": ("Santiago", "Chitré", "Penonomé", "David"),
    "KH": ("Battambang", "Kampong Cham", "Takeo", "Siem Reap"),
    "TL": ("Baucau", "Ermera", "Maliana", "Suai"),
    "ZW": ("Masvingo", "Mutare", "Gweru", "Chinhoyi"),
    "HT": ("Hinche", "Jacmel", "Les Cayes", "Gonaïves"),
    "PE": ("Cusco", "Puno", "Huancayo", "Ayacucho"),
    "BO": ("Cochabamba", "Sucre", "Tarija", "Oruro"),
    "GT": ("Quetzaltenango", "Cobán", "Huehuetenango", "Sololá"),
    "VN": ("Cao Lãnh", "Buôn Ma Thuột", "Sơn La", "Hội An"),
}

# (sector, what the name says it does, the purposes its loans serve)
SECTORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("agriculture: shea butter", "des productrices de karité", ("equipment", "crop_financing")),
    ("agriculture: cashew", "des producteurs d'anacarde", ("crop_financing", "equipment")),
    ("agriculture: coffee", "des caféiculteurs", ("crop_financing", "development_expansion")),
    ("agriculture: cocoa", "des cacaoculteurs", ("crop_financing", "consolidation_restructuring")),
    ("agriculture: rice", "des riziculteurs", ("crop_financing", "equipment")),
    ("agriculture: market gardening", "des maraîchères", ("crop_financing", "equipment")),
    ("agriculture: quinoa", "des producteurs de quinoa", ("crop_financing", "development_expansion")),
    ("livestock: dairy", "des éleveurs laitiers", ("equipment", "development_expansion")),
    ("fisheries: artisanal fishing", "des pêcheurs artisans", ("equipment", "development_expansion")),
    ("food processing: cereals", "des transformatrices de céréales", ("equipment", "development_expansion")),
    ("crafts: weaving", "des tisserandes", ("equipment", "development_expansion")),
    ("beekeeping: honey", "des apiculteurs", ("equipment", "crop_financing")),
    ("renewable energy: solar", "d'électrification solaire", ("equipment", "development_expansion")),
    ("water: drinking-water service", "des usagers de l'eau", ("equipment", "consolidation_restructuring")),
)

LEGAL_FORM_WORDS = {
    "cooperative": "Coopérative",
    "mutual": "Mutuelle",
    "association": "Association",
    "non_profit_social_enterprise": "Entreprise sociale",
    "private_company": "Société",
}

ENVIRONMENTAL_PRACTICES: tuple[str, ...] = (
    "agroforestry",
    "composting",
    "drip irrigation",
    "organic certification",
    "solar drying",
    "waste recycling",
    "reforestation",
    "integrated pest management",
)
