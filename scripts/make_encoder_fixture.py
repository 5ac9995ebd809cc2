#!/usr/bin/env python3
"""Writes the BERT encoder parity fixture, tests/fixtures/encoder/:

    sentences.txt     one sentence per line, UTF-8, '\\n' line ends, no empty line
    embeddings.f32    raw little-endian float32, n x 384: sentence-transformers' default pipeline
                      (Transformer -> mean Pooling -> Normalize, max_seq_length 256)
    pooled.f32        the same before Normalize (mean of the token embeddings under the attention mask)
    token_counts.txt  tokens per sentence, [CLS] and [SEP] included, after truncation to 256

Every sentence is written here (hand-written lists and fixed template combinations, no random
numbers, nothing copied from a data set). PyTorch is needed only to run this script, never by the
tests:

    bash bench/encoder_torch.sh --help      # creates .cache/torch-venv from bench/requirements-encoder.txt
    .cache/torch-venv/bin/python scripts/make_encoder_fixture.py [MODEL_DIR]

MODEL_DIR defaults to $VIGIL_MODEL_DIR or <repo>/.cache/models/all-MiniLM-L6-v2 (scripts/fetch_model.sh).
"""

import collections
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "encoder")
MAX_SEQ = 256
DIM = 384

# --- hand-written sentences ---------------------------------------------------------------------

POSITIVE = [
    "Quarterly revenue rose 18% to a record $4.2 billion, beating analyst expectations.",
    "The company raised its full-year guidance after strong demand for its cloud services.",
    "Shares jumped 12% in early trading following the upbeat earnings report.",
    "Net profit more than doubled as margins expanded across every business segment.",
    "The board approved a 10% dividend increase and a new $2 billion share buyback.",
    "Operating cash flow reached an all-time high, allowing the group to cut net debt by half.",
    "Analysts upgraded the stock to buy, citing accelerating subscription growth.",
    "The retailer reported its best holiday season in a decade, with same-store sales up 9%.",
    "Orders for the new aircraft exceeded targets, lifting the backlog to a record level.",
    "The lender's credit rating was upgraded to A+ on improved capital ratios.",
    "Strong export demand pushed the steelmaker's operating profit up by 35 percent.",
    "The biotech firm surged after regulators approved its lead drug ahead of schedule.",
    "Customer churn fell to its lowest level ever while average revenue per user climbed.",
    "The merger is expected to be accretive to earnings from the first full year.",
    "Bookings grew 40% year over year, and management said the pipeline has never been stronger.",
    "The chipmaker's gross margin widened to 64%, well above consensus estimates.",
    "The startup closed an oversubscribed funding round at triple its previous valuation.",
    "Vacancy rates at the landlord's office portfolio fell for the fourth straight quarter.",
    "The airline returned to profit as passenger numbers recovered faster than expected.",
    "Investors cheered the restructuring plan, sending the bonds to their highest price this year.",
    "Sales of electric vehicles tripled, and the carmaker now expects to break even in 2025.",
    "The insurer posted a combined ratio of 91%, its best underwriting result in years.",
    "Fee income climbed sharply as assets under management hit a new peak.",
    "The utility won approval for a rate increase that will lift earnings for the next three years.",
    "Record wheat harvests boosted the trading house's profit well beyond forecasts.",
]

NEGATIVE = [
    "The company issued a profit warning and cut its annual sales forecast by 15%.",
    "Shares plunged 23% after the firm missed revenue estimates for a third straight quarter.",
    "The bank set aside $1.1 billion for bad loans as defaults climbed sharply.",
    "Operating losses widened as raw material costs soared and demand weakened.",
    "The retailer announced it will close 120 stores and lay off about 4,000 workers.",
    "Regulators opened an investigation into the group's accounting practices.",
    "The credit rating agency downgraded the company's debt to junk status.",
    "Net income fell 40% year on year, hurt by a large impairment charge.",
    "The drugmaker halted a late-stage trial after the treatment failed to show any benefit.",
    "The chief executive resigned abruptly amid a probe into undisclosed related-party deals.",
    "Guidance was withdrawn entirely, citing severe supply chain disruption.",
    "The property developer missed a bond payment and entered a 30-day grace period.",
    "Same-store sales dropped 8%, the steepest decline since the financial crisis.",
    "The dividend was suspended to preserve cash as the balance sheet deteriorated.",
    "A cyberattack shut down production at three plants for more than a week.",
    "The carmaker recalled 600,000 vehicles over a braking defect, hitting quarterly earnings.",
    "Losses at the investment banking unit deepened as deal activity dried up.",
    "The airline cut capacity and warned of further losses as fuel prices spiked.",
    "Auditors raised substantial doubt about the company's ability to continue as a going concern.",
    "The stock fell to a 52-week low after a major customer cancelled its contract.",
    "Margins collapsed under aggressive price competition from new entrants.",
    "The insurer took a heavy hit from storm claims and reported its first annual loss in a decade.",
    "Inventory write-downs and weak consumer demand pushed the group deep into the red.",
    "The miner suspended operations after a fatal accident at its largest site.",
    "Bondholders face steep losses under the proposed debt restructuring.",
]

NEUTRAL = [
    "The company will report its second-quarter results on July 24.",
    "The annual general meeting is scheduled to take place in Helsinki next month.",
    "The group operates in 14 countries and employs about 9,500 people.",
    "The board has appointed a new chief financial officer, effective January 1.",
    "The offer period runs from March 3 to March 21.",
    "The firm manufactures packaging materials for the food and beverage industry.",
    "Trading in the shares will continue as normal during the review.",
    "The central bank left its benchmark interest rate unchanged at 4.25%.",
    "The transaction is subject to customary regulatory approvals.",
    "The company's fiscal year ends on the last Saturday of September.",
    "The new headquarters will be located in the city's business district.",
    "The index is rebalanced every quarter based on free-float market capitalisation.",
    "The contract covers maintenance services for a period of five years.",
    "The bond has a coupon of 3.5% and matures in 2031.",
    "The subsidiary will be renamed following the completion of the deal.",
    "Details of the capital markets day will be published on the investor relations website.",
    "The shares are listed on both the Frankfurt and Vienna stock exchanges.",
    "The plant has an annual production capacity of 200,000 tonnes.",
    "The company said it would comment further once the review is complete.",
    "The meeting of shareholders approved all proposals on the agenda.",
    "Trading volume was in line with the 30-day average.",
    "The fund invests mainly in investment-grade corporate bonds.",
    "The report covers the period from January to June.",
    "The company confirmed that talks with potential partners are ongoing.",
    "The statistics office will publish the inflation figures on Thursday.",
]

SHORT = [
    "Buy.", "Sell!", "Hold", "Profit warning", "Record earnings", "Shares fall", "Dividend cut",
    "Merger approved", "Neutral outlook", "$TSLA", "Q3 results", "Guidance raised",
    "Bankruptcy filing", "Stocks rally", "No comment.", "Bonds slump", "Rates unchanged",
    "Earnings beat", "OK", "📈", "Brexit", "Inflation cools", "Nestlé", "株価", "營收", "Hausse",
    "IPO priced", "?!", "Recession fears", "Strong buy",
]

ACCENTS = [
    "Nestlé's café division reported solid growth in Zürich and Genève.",
    "Müller AG übertraf die Erwartungen der Analysten deutlich.",
    "La compañía española aumentó su beneficio neto un 12% en el año.",
    "Société Générale a publié des résultats supérieurs aux prévisions.",
    "Señor Muñoz, the CFO, said the peso's weakness hurt reported earnings.",
    "The Øresund bridge operator and Ørsted both reported steady cash flows.",
    "Crème brûlée maker Pâtisserie Élysée plans an IPO on Euronext.",
    "Ångström Capital raised SEK 2.3bn for its Nordic fund.",
    "Jürgen Groß from Düsseldorf joins the supervisory board.",
    "São Paulo-listed Itaú posted higher fee income this quarter.",
    "Łódź-based retailer reports a jump in online sales.",
    "The naïve valuation ignores the coöperative's résumé of past restructurings.",
]

NON_ENGLISH = [
    "Die Aktie stieg nach den starken Quartalszahlen um fünf Prozent.",
    "Le chiffre d'affaires a reculé de 3 % au troisième trimestre.",
    "Las acciones cayeron con fuerza tras la advertencia sobre beneficios.",
    "A empresa anunciou um aumento de dividendos para os acionistas.",
    "Il consiglio di amministrazione ha approvato il bilancio annuale.",
    "De omzet van het concern steeg met acht procent.",
    "Bolaget redovisade ett rekordresultat för andra kvartalet.",
    "Spółka obniżyła prognozę zysku na ten rok.",
    "Şirketin net kârı yüzde 20 arttı.",
    "Yhtiön liikevaihto kasvoi odotettua nopeammin.",
    "La banque centrale maintient ses taux directeurs inchangés.",
    "Der Vorstand rechnet mit einem schwierigen Geschäftsjahr.",
    "El banco registró pérdidas por primera vez en diez años.",
    "Virksomheden forventer vækst i omsætningen næste år.",
]

CJK = [
    "该公司第三季度营收同比增长15%，超出市场预期。",
    "受需求疲软影响，公司股价大幅下跌。",
    "中国人民银行宣布下调存款准备金率0.5个百分点。",
    "董事会批准了新的股票回购计划。",
    "トヨタ自動車は通期の業績予想を上方修正した。",
    "日経平均株価は3日続落し、終値は前日比412円安となった。",
    "同社は来月、新しい決算資料を公表する予定です。",
    "東京証券取引所で半導体関連株が急落した。",
    "阿里巴巴集团公布季度财报，净利润下降。",
    "ソニーグループの株価は決算発表後に上昇した。",
    "The Hang Seng rose 2% as 腾讯控股 and 美团 rallied.",
    "Toyota (トヨタ) shares gained after the yen weakened to ¥150 per dollar.",
    "삼성전자의 영업이익이 크게 증가했습니다.",
]

EMOJI = [
    "$NVDA to the moon 🚀🚀🚀",
    "Earnings beat! 📈💰 Great quarter for the team.",
    "Ouch 📉😬 guidance cut again.",
    "Holding my shares 💎🙌 no matter what.",
    "Markets today: 🟢 tech, 🔴 energy, ⚪ utilities.",
    "Rate decision at 2pm ⏰ — everyone is waiting 👀",
    "Another recall? 🤦‍♂️ This stock can't catch a break.",
    "🇺🇸 CPI came in hot 🔥 and yields jumped.",
    "Dividend day 🎉🥳",
    "Not sure about this IPO 🤔 valuation looks stretched.",
]

CASHTAGS = [
    "$AAPL and $MSFT led the rally while $TSLA lagged.",
    "Long $AMZN, short $WMT into earnings.",
    "$GOOGL beat on revenue but missed on EPS.",
    "Watching $BRK.B, $JPM and $GS ahead of the Fed meeting.",
    "$NFLX subscriber growth disappointed; shares down 9% after hours.",
    "Options flow on $SPY suggests traders are hedging heavily.",
    "$META raised capex guidance to $35-40B.",
    "Why is $AMD up 6% today?",
]

NUMBERS = [
    "Revenue: $12.4bn (+7.2% y/y); EPS: $1.83 vs $1.75 est.",
    "The 10-year yield rose 14 basis points to 4.61%.",
    "EUR/USD fell to 1.0712, its lowest since November.",
    "Gold climbed 1.8% to $2,034.50 an ounce.",
    "Net debt/EBITDA improved from 3.1x to 2.4x.",
    "The company sold 1,234,567 units in Q2 2023, up 0.5% QoQ.",
    "Price target raised to €145 from €120; rating: Overweight.",
    "Inflation eased to 3.2% in October from 3.7% in September.",
    "Brent crude traded at $83.27/bbl, down $1.05 (-1.25%).",
    "Market cap: ¥4.5 trillion; P/E: 18.3x; dividend yield: 2.9%.",
    "GDP grew at an annualised rate of 4.9% in the third quarter.",
    "The fund returned -12.7% in 2022 versus -18.1% for the benchmark.",
    "Costs of £3.2m were booked in H1, vs £1.9m a year earlier.",
    "Unemployment held at 3.9%; payrolls +150k (consensus +180k).",
]

PUNCT = [
    "Wait... what?! Shares down 30%?!?!",
    "\"Unacceptable,\" said one investor -- \"completely unacceptable!\"",
    "Results (unaudited): revenue [up], margins [down], outlook {unchanged}.",
    "Q&A: margins? pricing?? guidance??? -- no answers.",
    "***BREAKING*** >>> CEO OUT <<<",
    "Buy/sell/hold? It depends; see p. 14, §3.2 (footnote 7).",
    "e-mail: ir@example.com; tel.: +1 (555) 010-0199; ref. #A-42/7.",
    "Well, well, well... another 'one-off' charge; how surprising!",
    "@analyst_jane: 'beat & raise' -> stock +5%... #earnings",
    "---===[ END OF REPORT ]===---",
]

ALL_CAPS = [
    "SHARES PLUNGE AFTER SHOCK PROFIT WARNING",
    "FED HOLDS RATES STEADY, SIGNALS CUTS LATER THIS YEAR",
    "BREAKING: MERGER TALKS COLLAPSE",
    "RECORD QUARTER FOR APPLE AS IPHONE SALES SOAR",
    "OIL PRICES SPIKE ON SUPPLY FEARS",
    "CEO RESIGNS WITH IMMEDIATE EFFECT",
    "STRONG BUY RATING REITERATED",
    "DOW JONES CLOSES AT ALL-TIME HIGH",
]

MISC = [
    "Short-seller report alleges the firm inflated its user numbers.",
    "Despite the loss, management remained cautiously optimistic about next year.",
    "Revenue was flat, but costs rose, so profit fell.",
    "Not bad, not great: results were broadly in line.",
    "The outlook is neither particularly good nor particularly bad.",
    "It's a beat on the top line and a miss on the bottom line.",
    "Supercalifragilisticexpialidocious valuations rarely last.",
    "Hyperinflationary accounting (IAS 29) was applied to the Argentinian subsidiary.",
    "Pneumonoultramicroscopicsilicovolcanoconiosis claims rose at the insurer.",
    "antidisestablishmentarianism aside, the bank's governance is sound",
    "the quick brown fox jumps over the lazy dog",
    "Cryptocurrency exchange volumes fell sharply after the regulatory crackdown.",
]

# --- deterministic template combinations ----------------------------------------------------------

COMPANIES = ["Apple", "Siemens", "Toyota", "Unilever", "Nokia", "BHP", "Tencent", "Shell", "Pfizer",
             "Volvo", "HSBC", "Samsung", "Inditex", "Roche", "Airbus", "Netflix", "Fortum", "Zalando"]
ACTIONS = [
    ("reported a {p}% rise in quarterly operating profit", "positive"),
    ("posted a {p}% drop in net sales", "negative"),
    ("said revenue was broadly unchanged at EUR {m} million", "neutral"),
    ("raised its dividend by {p}%", "positive"),
    ("cut {k} jobs as part of a cost-saving programme", "negative"),
    ("will publish its interim report on {d}", "neutral"),
    ("won a contract worth about ${m} million", "positive"),
    ("swung to a net loss of ${m} million", "negative"),
]
TAILS = ["", ", the company said in a statement", " on Tuesday", ", according to a filing",
         ", sending its shares higher", ", analysts said"]
DATES = ["April 27", "August 3", "October 19", "February 8", "May 15", "November 2"]


def template_sentences(n):
    out = []
    for i in range(n):
        comp = COMPANIES[(i * 7) % len(COMPANIES)]
        action, _tone = ACTIONS[i % len(ACTIONS)]
        tail = TAILS[(i * 5) % len(TAILS)]
        action = action.format(p=(i * 13) % 47 + 2, m=(i * 37) % 900 + 15, k=(i * 250) % 4000 + 150,
                               d=DATES[i % len(DATES)])
        out.append(f"{comp} {action}{tail}.")
    return out


def medium_sentences():
    """Paragraphs of roughly 60 to 130 tokens: 3 to 5 sentences joined."""
    pools = [POSITIVE, NEGATIVE, NEUTRAL, NUMBERS, ACCENTS, CASHTAGS, CJK, NON_ENGLISH]
    out = []
    for i in range(24):
        k = 3 + i % 3
        parts = [pools[(i + j) % len(pools)][(i * 3 + j * 5) % len(pools[(i + j) % len(pools)])]
                 for j in range(k)]
        out.append(" ".join(parts))
    return out


def paragraph_sentences():
    """Texts of roughly 100 to 250 tokens: long but not truncated."""
    pools = [NEUTRAL, POSITIVE, NUMBERS, NEGATIVE, MISC, CASHTAGS]
    out = []
    for i in range(4):
        k = 7 + 2 * i
        out.append(" ".join(pools[(i + j) % len(pools)][(i * 5 + j * 3) % len(pools[(i + j) % len(pools)])]
                            for j in range(k)))
    return out


def exact_length_sentences(count_tokens):
    """Texts of exactly 255, 256 and 257 tokens ([CLS]/[SEP] included) under the model's tokenizer:
    the longest that fit unchanged, and the shortest that gets truncated. Words of the neutral
    sentences are added while the count stays under the target, then single-token words fill up."""
    words = " ".join(NEUTRAL + POSITIVE).split()
    fillers = ["stock", "market", "profit", "bank", "growth"]
    out = []
    for target in (MAX_SEQ - 1, MAX_SEQ, MAX_SEQ + 1):
        text, i = words[0], 1
        while i < len(words) and count_tokens(text + " " + words[i]) <= target:
            text += " " + words[i]
            i += 1
        j = 0
        while count_tokens(text) < target:
            text += " " + fillers[j % len(fillers)]
            j += 1
        assert count_tokens(text) == target, (target, count_tokens(text))
        out.append(text)
    return out


def long_sentences():
    """Texts longer than 256 WordPiece tokens, to exercise truncation."""
    out = []
    # 1-3: long English reports stitched from the lists.
    for i in range(3):
        parts = []
        for j in range(18 + 6 * i):
            pool = (POSITIVE, NEGATIVE, NEUTRAL)[(i + j) % 3]
            parts.append(pool[(j * 7 + i) % len(pool)])
        out.append(" ".join(parts))
    # 4: German annual-report style text.
    out.append(" ".join(NON_ENGLISH[k] for k in (0, 11)) + " " + " ".join(
        f"Im Segment {s} stieg der Umsatz um {3 + n} Prozent auf {120 + 17 * n} Millionen Euro, "
        f"während das bereinigte Ergebnis vor Zinsen und Steuern bei {14 + n} Millionen Euro lag."
        for n, s in enumerate(["Industrie", "Energie", "Gesundheit", "Mobilität", "Infrastruktur",
                               "Digitalisierung", "Logistik", "Chemie", "Handel", "Dienstleistungen"])))
    # 5: Chinese and Japanese (one token per ideograph, so length grows fast).
    out.append("".join(CJK[:10]) * 3)
    # 6: numbers and tickers table flattened into one line.
    out.append(" ".join(
        f"${t}: close {100 + 3.25 * n:.2f} ({'+' if n % 2 else '-'}{0.4 + n / 10:.1f}%), vol {1200 + 311 * n:,}k;"
        for n, t in enumerate(["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "V", "XOM",
                               "UNH", "JNJ", "WMT", "PG", "MA", "HD", "CVX", "KO", "PEP", "COST"])))
    # 7: emoji and punctuation heavy social-media thread.
    out.append(" ".join(EMOJI + PUNCT + CASHTAGS))
    # 8: very long (well past 512 tokens) mixed text.
    out.append(" ".join(POSITIVE + NEGATIVE + NEUTRAL + ACCENTS))
    return out


def build_sentences(count_tokens):
    groups = [
        ("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL), ("short", SHORT),
        ("accents", ACCENTS), ("non-english", NON_ENGLISH), ("cjk", CJK), ("emoji", EMOJI),
        ("cashtags", CASHTAGS), ("numbers", NUMBERS), ("punct", PUNCT), ("caps", ALL_CAPS),
        ("misc", MISC), ("template", template_sentences(48)), ("medium", medium_sentences()),
        ("paragraph", paragraph_sentences()), ("exact-length", exact_length_sentences(count_tokens)),
        ("long", long_sentences()),
    ]
    sentences, seen = [], set()
    for _name, group in groups:
        for s in group:
            assert s and s == s.strip(), repr(s)
            assert not any(c in s for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\t"), repr(s)
            if s not in seen:
                seen.add(s)
                sentences.append(s)
    return sentences, groups


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "VIGIL_MODEL_DIR", os.path.join(ROOT, ".cache", "models", "all-MiniLM-L6-v2"))
    if not os.path.isfile(os.path.join(model_dir, "model.safetensors")):
        sys.exit(f"make_encoder_fixture.py: {model_dir}/model.safetensors missing (run scripts/fetch_model.sh)")

    import numpy as np
    import torch
    import sentence_transformers
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)

    model = SentenceTransformer(model_dir, device="cpu")
    tok = model.tokenizer

    def count_tokens(text):  # full length, [CLS] and [SEP] included, no truncation
        return len(tok(text, add_special_tokens=True, verbose=False)["input_ids"])

    sentences, groups = build_sentences(count_tokens)
    n = len(sentences)

    model.eval()
    assert model.max_seq_length == MAX_SEQ, model.max_seq_length
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"], model
    assert next(model.parameters()).dtype == torch.float32

    emb = model.encode(sentences, batch_size=32, convert_to_numpy=True)
    assert emb.shape == (n, DIM) and emb.dtype == np.float32, (emb.shape, emb.dtype)

    # Before Normalize: the same pipeline without its last module.
    pooled_model = SentenceTransformer(modules=[model[0], model[1]], device="cpu")
    pooled = pooled_model.encode(sentences, batch_size=32, convert_to_numpy=True)
    assert pooled.shape == (n, DIM) and pooled.dtype == np.float32

    renorm = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    norm_err = float(np.abs(renorm - emb).max())
    assert norm_err <= 1e-6, f"normalised pooled.f32 differs from embeddings.f32 by {norm_err}"

    # Cross-check pooled.f32 against a mean over the per-token embeddings, one sentence at a time.
    counts, full_counts = [], []
    pool_err = 0.0
    for i, s in enumerate(sentences):
        full_counts.append(count_tokens(s))
        feats = model.preprocess([s]) if hasattr(model, "preprocess") else model.tokenize([s])
        mask = feats["attention_mask"][0]
        counts.append(int(mask.sum()))
        with torch.inference_mode():
            out = model[0]({k: v for k, v in feats.items()})
        tokens = out["token_embeddings"][0][mask.bool()]
        mean = tokens.mean(dim=0).numpy()
        pool_err = max(pool_err, float(np.abs(mean - pooled[i]).max()))
    assert pool_err <= 1e-5, f"manual mean pooling differs from pooled.f32 by {pool_err}"
    assert all(c == min(f, MAX_SEQ) for c, f in zip(counts, full_counts))

    # Coverage the fixture promises.
    over = sum(f > MAX_SEQ for f in full_counts)
    mid = sum(60 <= c <= 130 for c in counts)
    short = sum(1 <= len(s.split()) <= 3 for s in SHORT)
    assert 240 <= n <= 300, n
    assert over >= 5, over
    assert MAX_SEQ in full_counts and MAX_SEQ + 1 in full_counts
    assert mid >= 10, mid
    assert short >= 10, short

    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "sentences.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(s + "\n" for s in sentences))
    emb.astype("<f4").tofile(os.path.join(OUT_DIR, "embeddings.f32"))
    pooled.astype("<f4").tofile(os.path.join(OUT_DIR, "pooled.f32"))
    with open(os.path.join(OUT_DIR, "token_counts.txt"), "w", encoding="ascii", newline="\n") as f:
        f.write("".join(f"{c}\n" for c in counts))

    # Read back what was written.
    with open(os.path.join(OUT_DIR, "sentences.txt"), encoding="utf-8") as f:
        assert f.read().split("\n")[:-1] == sentences
    assert np.array_equal(np.fromfile(os.path.join(OUT_DIR, "embeddings.f32"), "<f4").reshape(n, DIM), emb)

    print(f"torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}, "
          f"transformers {transformers.__version__}, model {model_dir}")
    print(f"{n} sentences -> {OUT_DIR}")
    print("groups: " + ", ".join(f"{name} {len(g)}" for name, g in groups))
    print(f"normalise(pooled) vs embeddings: max abs diff {norm_err:.3g} (limit 1e-6)")
    print(f"manual mean pooling vs pooled: max abs diff {pool_err:.3g} (limit 1e-5)")
    buckets = [(1, 8), (9, 16), (17, 32), (33, 64), (65, 128), (129, 256), (257, 512), (513, 10 ** 9)]
    hist = collections.Counter()
    for f in full_counts:
        for lo, hi in buckets:
            if lo <= f <= hi:
                hist[(lo, hi)] += 1
    print("tokens with [CLS]/[SEP], before truncation:")
    for lo, hi in buckets:
        label = f"{lo}-{hi}" if hi < 10 ** 9 else f">={lo}"
        print(f"  {label:>9}: {hist[(lo, hi)]}")
    print(f"{over} sentences over {MAX_SEQ} tokens (truncated), {mid} with 60-130 tokens, "
          f"{short} short ones of 1-3 words; min {min(full_counts)}, max {max(full_counts)} tokens")


if __name__ == "__main__":
    main()
