"""Names a model may give its graph, tensors, nodes and dims that break careless code: quotes,
newlines, NUL, path tricks, IR-text syntax, C and shell fragments, non-ASCII. Every target must
import, compile and run a model named with them, and write nothing outside its output folder."""

HOSTILE_NAMES = [
    'quote"d', "it's", "new\nline", "cr\rlf", "tab\there", "back\\slash", "\\", '"', "../../etc/passwd",
    "/abs/path", "nul\0byte", "\x01\x1f\x7f", "caf\u00e9", "\u4e2d\u6587", "emoji\U0001F600",
    "\u202eright-to-left", "\ufeffbom", "line\u2028separator", "%x", "x: f32[2]", "}", "return", "_", "const",
    'loc("n")', "dense_resource<0>", "inf", "nan", "true", "f32", "0", "-1", " ", "#comment", "[k=v]", "a,b",
    "\\u0041", "\\n", '*/ abort(); /*', "#define x 1", "??/",
]
