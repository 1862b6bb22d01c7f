# Made once (python3 make_sample.py ../../../../shared/tokenizers/gpt2); the test suite never runs it.
# Writes a sub-tokenizer of GPT-2 (vocab.json + merges.txt) holding exactly the merges that encoding
# the sample texts applies, in GPT-2's rank order and with GPT-2's ids, and expected.json: the texts
# with the ids OpenAI's encoder.py algorithm gives with the FULL merges.txt. Dropping a merge that is
# never applied cannot change any encoding (the merge applied at each step is the lowest-ranked pair
# present), so the sample encodes these texts exactly as GPT-2 does.
import json, re, sys

src = sys.argv[1]
vocab = json.load(open(f"{src}/vocab.json", encoding="utf-8"))
merge_lines = [l for l in open(f"{src}/merges.txt", encoding="utf-8").read().split("\n") if l and not l.startswith("#version")]
ranks = {tuple(l.split(" ")): i for i, l in enumerate(merge_lines)}

def bytes_to_unicode():  # OpenAI encoder.py
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, map(chr, cs)))
B2U = bytes_to_unicode()

def bpe(token, applied, leftmost=True):  # OpenAI encoder.py's loop (leftmost=False: the bug this sample catches)
    word = list(token)
    while len(word) > 1:
        pairs = set(zip(word, word[1:]))
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks: break
        applied.add(best)
        seq = word if leftmost else word[::-1]
        out, i = [], 0
        while i < len(seq):
            pair = None if i + 1 == len(seq) else (seq[i], seq[i + 1]) if leftmost else (seq[i + 1], seq[i])
            if pair == best: out.append(best[0] + best[1]); i += 2
            else: out.append(seq[i]); i += 1
        word = out if leftmost else out[::-1]
    return word

# ASCII-only extra texts: GPT-2's regex reduces to this for them.
ASCII_PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
cases = json.load(open(f"{src}/expected_encodings.json", encoding="utf-8"))["cases"]
texts = [(c["text"], c["pretokens"], c["ids"]) for c in cases]
# Ties: repeated pairs, short (at most 24 symbols: the rescanning path) and long (the queue path).
extra = ["a" * n for n in (3, 5, 7, 24, 25, 31, 64, 257)] + [
    "aaaa aaaaaaaaa " + "a" * 40, "=" * 30, "-" * 80, "." * 26, "!" * 9, "0" * 40, "1111111", "z" * 33,
    "hahahahahahahahahahahahahahahaha", "abracadabra" * 20, "mississippi" * 4, "x" + " " * 40 + "y", "ee" * 20, "llllllllllllllllllllllllll"]
for t in extra:
    texts.append((t, ASCII_PAT.findall(t), None))

applied, out_cases, differs = set(), [], 0
for text, pretokens, want in texts:
    ids, rightmost = [], []
    for p in pretokens:
        u = "".join(B2U[b] for b in p.encode("utf-8"))
        ids += [vocab[t] for t in bpe(u, applied)]
        rightmost += [vocab[t] for t in bpe(u, set(), leftmost=False)]
    if want is not None: assert ids == want, (text, ids, want)
    differs += ids != rightmost
    out_cases.append({"text": text, "ids": ids, "rightmost_first_differs": ids != rightmost})

needed = set(B2U.values()) | {a + b for a, b in applied} | {"<|endoftext|>"}
sub_vocab = {t: i for t, i in vocab.items() if t in needed}
sub_merges = [" ".join(m) for m in sorted(applied, key=lambda m: ranks[m])]
json.dump(sub_vocab, open("vocab.json", "w", encoding="utf-8"), ensure_ascii=False, sort_keys=True)
open("merges.txt", "w", encoding="utf-8").write("#version: 0.2\n" + "\n".join(sub_merges) + "\n")
json.dump({"source": "GPT-2 (openai/gpt-2, MIT): ids by OpenAI encoder.py's BPE over the full 50,000 merges",
           "cases": out_cases}, open("expected.json", "w", encoding="utf-8"), ensure_ascii=False, indent=1)
print(f"{len(out_cases)} texts, {len(sub_vocab)} tokens, {len(sub_merges)} merges; rightmost-first differs on {differs}")
for c in out_cases:
    if c["rightmost_first_differs"]: print("  differs:", repr(c["text"][:40]), len(c["text"]))
