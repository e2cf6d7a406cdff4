#!/usr/bin/env python3
"""Golden data for the tokenizer tests, made with Hugging Face tokenizers (the reference).

Runs on the GPU machine (which has `tokenizers`), from the repository root:

    python3 tools/gen_tokenizer_corpus.py --out "$OUT" \
        [--bench build-tok/bench/dsv4_tokenizer_bench]

Writes to --out:
  tokenizer_corpus.json       {text, ids} pairs (and a few with special tokens left unparsed),
                              {ids, skip_special, text} decode cases, and a tiny tokenizer
                              whose added tokens use every option, with its {text, ids} pairs
                              -> tests/data/tokenizer/
  pretokenizer_classes.json   for every code point of planes 0-3 and 14, how HF's pre-tokenizer
                              splits it in a few probe strings, run-length encoded
                              -> tests/data/tokenizer/
and prints HF's single-thread encode speed on tools/english_text.py's text, and dsv4's when
--bench names the benchmark binary (which must also agree with HF on every id of that text).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

# One thread for HF, for a fair single-core figure; must precede the import.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import english_text  # noqa: E402

TOKENIZER_DIR = "assets/tokenizer/deepseek-v3"
SPEED_TEXT_BYTES = 8_000_000

# Probes of the pre-tokenizer: how many pieces each string with the code point in place of
# {c} becomes. Together they tell letters/marks, punctuation/symbols, numbers, white space and
# everything else apart, which is all the pattern distinguishes.
PROBES = [" {c}", "{c}a", "{c}.", "a{c}", "{c}{c}"]
PROBE_RANGES = [(0x0, 0x40000), (0xE0000, 0xE1000)]

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity.",
    "Dr. Smith's lab (est. 1998) didn't publish—until now. \"Why?\" she asked; nobody knew...",
    "I'm sure you'll agree: we've done what we'd promised, and they're happy. Isn't it?",
    "Mr. O'Neil paid $1,234.56 on 2024-03-15 at 10:45am for 3 items @ 15% off.",
    "E-mail: jane.doe+tag@example.co.uk, URL: https://example.com/a/b?c=d&e=f#g",
    "ALL CAPS SENTENCE WITH ACRONYMS LIKE NASA, HTTP/2 AND GPU-ACCELERATED CUDA.",
    "Hyphenated-words, en–dashes, em—dashes, ellipses… and “curly quotes” ‘too’.",
    "one\ntwo\n\nthree\n\n\nfour", "Line one.\r\nLine two.\r\n\r\nLine four.\r",
    "Tabs\tbetween\twords\t\tand\t\t\ttabs", "trailing spaces   ", "   leading spaces",
    "a  b   c    d     e", " ", "  ", "\t", "\n", "\r\n", " \n ", "\n \n", "x \t\n y",
    "", "a", "A.", "?!", "...", "--", "'s", " 's", "I'M", "don't", "rock'n'roll",
]

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n"
    "\treturn v[0] == 1 ? 0 : 1;\n}\n",
    '{"name": "dsv4", "version": [0, 1, 0], "ok": true, "nested": {"k": null}}',
    "<html><body><p class=\"x\">Hello &amp; welcome</p></body></html>",
    "for i in $(seq 1 10); do echo \"$i\" | awk '{print $1*2}'; done",
    "SELECT id, COUNT(*) FROM users WHERE age >= 18 GROUP BY id ORDER BY 2 DESC;",
    "x += y ** 2 // 3 % 4 << 1 >> 2 & 0xFF | ~z ^ w && !q || r != s",
    "    indented_by_four = True\n        indented_by_eight = False\n",
    "fn main() -> Result<(), Box<dyn Error>> { println!(\"{:?}\", vec![1u8; 4]); Ok(()) }",
    "const f = async (a, b = {}) => { await g?.(a ?? b); };",
    "\\begin{equation} E = mc^2 \\end{equation}", "a_b_c__d___e", "CamelCaseIdentifierName",
    "path/to/file_name.ext:123:45: error: expected ';' before '}' token",
]

NUMBERS = [
    "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159265358979323846", "1,000,000", "1e-10", "0x7FFFFFFF", "-42", "+7", "007",
    "2024年3月15日", "１２３４５", "٠١٢٣٤٥٦٧٨٩", "۱۲۳", "१२३४", "²³¹", "½ ¾ ⅓", "Ⅻ ⅷ", "①②③",
    "𝟙𝟚𝟛", "v1.2.3-rc.4", "a1b22c333d4444", "9" * 100,
]

SCRIPTS = [
    "你好，世界！今天天气很好。", "我们在2024年发布了新模型。", "中文English混合Text测试", "龍の鳴き声",
    "日本語のテキストとカタカナ、ひらがな。", "ｶﾀｶﾅ ﾊﾝｶｸ", "ゔ ゟ ヿ ㇰ", "東京都渋谷区1-2-3",
    "한국어 텍스트입니다. 안녕하세요!", "ㄱㄴㄷ ᄀᄁ", "العربية: مرحبا بالعالم، كيف حالك؟",
    "اَلسَّلَامُ عَلَيْكُمْ", "עברית: שלום עולם", "שָׁלוֹם", "हिन्दी: नमस्ते दुनिया।",
    "क्षत्रिय ज्ञान", "ภาษาไทยไม่มีช่องว่าง", "Русский текст: Привет, мир!",
    "Ελληνικά: Γειά σου Κόσμε",
    "Հայերեն", "ქართული", "አማርኛ", "བོད་ཡིག", "ᠮᠣᠩᠭᠣᠯ\u180eᠪᠢᠴᠢᠭ", "ខ្មែរ", "မြန်မာ", "සිංහල",
    "தமிழ்", "বাংলা", "Tiếng Việt có dấu", "Türkçe ıİ", "Straße STRASSE ẞ", "ﬁnancial ﬂow",
    "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄", "Ｆｕｌｌｗｉｄｔｈ", "ℌ𝔢𝔩𝔩𝔬", "ᚠᚢᚦᚨᚱᚲ", "𓀀𓀁", "ꦗꦮ", "𐌰𐌱𐌲",
]

ACCENTS = [
    "café", "cafe\u0301", "naïve résumé", "Ångström", "a\u0300\u0301\u0302\u0303", "\u0301abc",
    "e\u0301\u0301\u0301", "Zalgo: Z\u0351\u0368\u0306a\u036b\u0357l\u0310g\u0344o\u0311",
    "ñ vs n\u0303", "Ǆ ǅ ǆ",
]

EMOJI = [
    "👍", "👍🏽", "👍🏿 thumbs", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🏴‍☠️", "🇺🇸🇯🇵🇫🇷", "🇺", "1️⃣ #️⃣",
    "❤️ ❤", "☺️☺", "😀😃😄😁", "I ❤️ NY", "🤷‍♂️", "🧑‍🤝‍🧑", "🫠🫡🫥", "🫨🩷🩵🪿🫎",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "text🙂text", "🙂 🙂  🙂",
]

INVISIBLE = [
    "zero\u200bwidth", "non\u200cjoiner", "join\u200der", "word\u2060joiner", "\ufeffBOM",
    "soft\u00adhyphen", "nbsp\u00a0here", "ideographic\u3000space", "line\u2028sep",
    "para\u2029sep", "nel\u0085here", "mongolian\u180evowel", "thin\u2009space", "\u200b",
    "\u202eRTL override\u202c", "\u2066isolate\u2069", "ctrl\x00\x01\x02\x1b[0m\x7f",
    "\x1c\x1d\x1e\x1f", "\u000b\u000c", "tag\U000e0041\U000e0042", "vs\ufe0f\ufe0e",
    "private\ue000\U000f0000", "\ufffd replacement", "\uffff\U0010ffff",
]

NEW_UNICODE = [
    # Assigned after Unicode 14 (the version PCRE2 10.42 knows): CJK Extension H (15.0) and I
    # (15.1), Kawi (15.0), 16.0 additions.
    "\U00031350\U00031351", "\U0002ebf0\U0002ebf1", "\U00011f00\U00011f04", "\U0001e4d0",
    "\U00010d40\U00010d4a", "\U0001cc00\U0001cc01", "\U00016d40", "\u31ef \u2ffc",
    "a\U00031350b", " \U0001fae8", ".\U0001fae8",
]

SPECIAL = [
    "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>",
    "<｜User｜>What is 2+2?<｜Assistant｜>4<｜end▁of▁sentence｜>",
    "x<｜User｜>y", " <｜User｜> ", "<｜User｜><｜User｜>", "<｜User", "｜User｜>", "<｜User｜",
    "<<｜User｜>>", "<｜place▁holder▁no▁17｜>", "<|EOT|>", "<|EOT|", "<｜tool▁calls▁begin｜>"
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜>"
    "<｜tool▁calls▁end｜>", "<｜fim▁begin｜>def f():<｜fim▁hole｜>\n<｜fim▁end｜>",
    "<think>reasoning</think>answer", "<｜▁pad▁｜>", "text<｜end▁of▁sentence｜>\n\nmore",
]

LONG = [
    "a" * 5000, "supercalifragilistic" * 200, "ab" * 3000, " " * 2000, "\n" * 500, "\t" * 300,
    "1234567890" * 300, "你好世界" * 700, "🙂" * 500, "é" * 1000, "-" * 3000, "." * 1001,
    "https://example.com/" + "path/" * 400, "SGVsbG8gV29ybGQh" * 200,
]

POOL = [c for group in (PROSE, CODE, NUMBERS, SCRIPTS, ACCENTS, EMOJI, INVISIBLE, SPECIAL)
        for s in group for c in s] + list(" \t\n\r")


def random_mixes(rng, count):
    """Strings of random fragments and characters from every category."""
    fragments = (PROSE + CODE + NUMBERS + SCRIPTS + ACCENTS + EMOJI + INVISIBLE + SPECIAL
                 + NEW_UNICODE)
    mixes = []
    for i in range(count):
        parts = []
        for _ in range(1 + rng.randrange(8)):
            kind = rng.randrange(3)
            if kind == 0:
                parts.append(rng.choice(fragments))
            elif kind == 1:
                parts.append("".join(rng.choice(POOL) for _ in range(1 + rng.randrange(20))))
            else:
                parts.append(" " * rng.randrange(4) + rng.choice(["\n", "\r\n", "\t", "", "  "]))
        mixes.append("".join(parts))
    # A few long documents.
    for _ in range(6):
        mixes.append("".join(rng.choice(fragments) + rng.choice([" ", "\n", ""])
                             for _ in range(300)))
    return mixes


def random_code_points(rng, count):
    """Strings of random code points anywhere in Unicode (not surrogates)."""
    strings = []
    for _ in range(count):
        chars = []
        for _ in range(1 + rng.randrange(30)):
            cp = rng.randrange(0x110000) if rng.randrange(2) else rng.randrange(0x3400)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0x20
            chars.append(chr(cp))
        strings.append("".join(chars))
    return strings


def encode_cases(tok):
    rng = random.Random(1234)
    texts = (PROSE + CODE + NUMBERS + SCRIPTS + ACCENTS + EMOJI + INVISIBLE + NEW_UNICODE + SPECIAL
             + LONG + random_mixes(rng, 220) + random_code_points(rng, 60))
    cases = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        assert decoded == text, f"HF does not round-trip {text!r}"
        cases.append({"text": text, "ids": ids})
    tok.encode_special_tokens = True
    for text in SPECIAL:
        cases.append({"text": text, "parse_special": False,
                      "ids": tok.encode(text, add_special_tokens=False).ids})
    tok.encode_special_tokens = False
    return cases


def bytes_to_unicode():
    """GPT-2's byte-level alphabet: the character standing for each byte."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD))
                 + list(range(0xAE, 0x100)))
    table, shifted = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def decode_cases(tok):
    rng = random.Random(99)
    alphabet = bytes_to_unicode()
    byte_ids = [tok.token_to_id(alphabet[b]) for b in range(256)]
    sequences = [
        [byte_ids[0xE2]], [byte_ids[0xE2], byte_ids[0x82]],
        [byte_ids[0xE2], byte_ids[0x82], byte_ids[0xAC]], [byte_ids[0x82]],
        [byte_ids[0xE2], byte_ids[0x41]], [byte_ids[0xF0], byte_ids[0x9F], byte_ids[0x99]],
        [byte_ids[0xF0], byte_ids[0x9F], byte_ids[0x99], byte_ids[0x82]],
        [byte_ids[0xC0], byte_ids[0x80]], [byte_ids[0xED], byte_ids[0xA0], byte_ids[0x80]],
        [byte_ids[0xF4], byte_ids[0x90], byte_ids[0x80], byte_ids[0x80]], [byte_ids[0xFF]],
        [byte_ids[0xE4], 0, byte_ids[0xBD], byte_ids[0xA0]],
        [0, 1, 2, 128803, 128804, 128805, 128000, 128814],
        tok.encode("<｜User｜>héllo 你好<｜Assistant｜>🙂<｜end▁of▁sentence｜>").ids,
    ]
    sequences += [[rng.randrange(tok.get_vocab_size()) for _ in range(40)] for _ in range(40)]
    cases = []
    for ids in sequences:
        for skip in (False, True):
            cases.append({"ids": ids, "skip_special": skip,
                          "text": tok.decode(ids, skip_special_tokens=skip)})
    return cases


def added_token_cases():
    """A tiny byte-level tokenizer whose added tokens use every option (lstrip, rstrip,
    single_word, normalized, special) and leave a gap in the file's ids, with HF's ids for
    texts that exercise them."""
    alphabet = bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
    vocab.update({"Ġt": 256, "he": 257, "Ġthe": 258})

    def added(id, content, special=False, lstrip=False, rstrip=False, single_word=False,
              normalized=False):
        return {"id": id, "content": content, "single_word": single_word, "lstrip": lstrip,
                "rstrip": rstrip, "normalized": normalized, "special": special}

    config = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            added(300, "<mask>", lstrip=True, rstrip=True), added(301, "[CLS]", special=True),
            added(302, "<sw>", single_word=True), added(303, "<ls>", special=True, lstrip=True),
            added(304, "<rs>", rstrip=True), added(305, "ab", normalized=True),
            added(306, "abc", special=True), added(307, "[CLS]x", special=True)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": ["Ġ t", "h e", "Ġt he"]},
    }
    tok = tokenizers.Tokenizer.from_str(json.dumps(config))
    texts = ["the <mask>  the", "x<sw>y <sw> z", "<sw>", "é<sw>", "a <ls> b", "a<rs>   b",
             "abcab", "[CLS]x[CLS]y", " the\t<mask>\u3000x", "<mask><mask>", "  <ls><ls>",
             "it's the 2 of them"]
    cases = []
    for parse_special in (True, False):
        tok.encode_special_tokens = not parse_special
        for text in texts:
            cases.append({"text": text, "parse_special": parse_special,
                          "ids": tok.encode(text, add_special_tokens=False).ids})
    tok.encode_special_tokens = False
    return {"tokenizer": config, "cases": cases}


def probe_classes(tok):
    pre = tok.pre_tokenizer
    ranges = []
    for begin, end in PROBE_RANGES:
        previous = None
        for cp in range(begin, end):
            if 0xD800 <= cp <= 0xDFFF:
                code = "surrogate"
            else:
                c = chr(cp)
                code = "".join(str(len(pre.pre_tokenize_str(p.format(c=c)))) for p in PROBES)
            if code != previous:
                ranges.append([cp, code])
                previous = code
        ranges.append([end, "end"])
    return ranges


def fnv1a(ids):
    value = 0xCBF29CE484222325
    for i in ids:
        value = ((value ^ i) * 0x100000001B3) & ((1 << 64) - 1)
    return value


def measure_speed(tok, bench):
    text = english_text.generate(SPEED_TEXT_BYTES)
    data = text.encode("utf-8")
    megabytes = len(data) / 1e6
    paragraphs = text.split("\n\n")
    tok.encode(text[:1_000_000], add_special_tokens=False)  # warm the BPE cache
    best = 1e30
    for _ in range(2):
        start = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        best = min(best, time.perf_counter() - start)
    print(f"HF tokenizers {tokenizers.__version__}, one thread, whole text: "
          f"{megabytes / best:.1f} MB/s ({megabytes:.2f} MB, {len(ids)} tokens, "
          f"checksum {fnv1a(ids):016x})")
    paragraph_megabytes = sum(len(p.encode("utf-8")) for p in paragraphs) / 1e6
    best = 1e30
    for _ in range(2):
        start = time.perf_counter()
        for paragraph in paragraphs:
            tok.encode(paragraph, add_special_tokens=False)
        best = min(best, time.perf_counter() - start)
    print(f"HF tokenizers per paragraph (encode() per call): "
          f"{paragraph_megabytes / best:.1f} MB/s ({len(paragraphs)} paragraphs)")
    best = 1e30
    for _ in range(2):
        start = time.perf_counter()
        tok.encode_batch(paragraphs, add_special_tokens=False)
        best = min(best, time.perf_counter() - start)
    print(f"HF tokenizers per paragraph (encode_batch, RAYON_NUM_THREADS=1): "
          f"{paragraph_megabytes / best:.1f} MB/s")
    if bench:
        text_path = "/tmp/english_text.txt"
        ids_path = "/tmp/dsv4_ids.bin"
        with open(text_path, "wb") as f:
            f.write(data)
        result = subprocess.run([bench, "--tokenizer", TOKENIZER_DIR, "--text", text_path,
                                 "--ids-out", ids_path], capture_output=True, text=True)
        print(result.stdout + result.stderr, end="")
        with open(ids_path, "rb") as f:
            ours = list(memoryview(f.read()).cast("i"))
        print(f"dsv4 ids {'==' if ours == ids else '!='} HF ids on the speed text "
              f"({len(ours)} vs {len(ids)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--bench", help="dsv4_tokenizer_bench binary to time on the same text")
    parser.add_argument("--skip-probe", action="store_true")
    args = parser.parse_args()
    tok = tokenizers.Tokenizer.from_file(os.path.join(TOKENIZER_DIR, "tokenizer.json"))
    os.makedirs(args.out, exist_ok=True)

    start = time.time()
    corpus = {
        "tokenizer": TOKENIZER_DIR + "/tokenizer.json",
        "made_with": f"tokenizers {tokenizers.__version__}",
        "encode": encode_cases(tok),
        "decode": decode_cases(tok),
        "added_tokens": added_token_cases(),
    }
    with open(os.path.join(args.out, "tokenizer_corpus.json"), "w", encoding="utf-8") as f:
        f.write("{\n")
        for key in ("tokenizer", "made_with"):
            f.write(f"{json.dumps(key)}: {json.dumps(corpus[key])},\n")
        for key in ("encode", "decode"):
            entries = ",\n".join(json.dumps(e, ensure_ascii=False) for e in corpus[key])
            f.write(f"{json.dumps(key)}: [\n{entries}\n],\n")
        f.write(f'"added_tokens": {json.dumps(corpus["added_tokens"], ensure_ascii=False)}\n')
        f.write("}\n")
    print(f"corpus: {len(corpus['encode'])} encode cases, {len(corpus['decode'])} decode cases "
          f"({time.time() - start:.1f} s)")

    if not args.skip_probe:
        start = time.time()
        with open(os.path.join(TOKENIZER_DIR, "tokenizer.json"), encoding="utf-8") as f:
            pre_tokenizer = json.load(f)["pre_tokenizer"]
        classes = {"made_with": f"tokenizers {tokenizers.__version__}",
                   "pre_tokenizer": pre_tokenizer, "probes": PROBES, "ranges": probe_classes(tok)}
        with open(os.path.join(args.out, "pretokenizer_classes.json"), "w", encoding="utf-8") as f:
            json.dump(classes, f, ensure_ascii=False, separators=(",", ":"))
        print(f"probe: {len(classes['ranges'])} runs ({time.time() - start:.1f} s)")

    measure_speed(tok, args.bench)


if __name__ == "__main__":
    main()
