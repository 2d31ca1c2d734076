/// FlatTemplate, the fast path for text-and-variables templates: it must render exactly what
/// swift-mustache renders for the same source and data (a table, then seeded random cases),
/// and it must step aside for everything else.
import JSON
import Testing
@testable import Templates

@Suite struct FlatTemplateTests {
    static let cases: [(subject: String, html: String, text: String?, json: String)] = [
        ("Invoice {{invoice_number}}", "<p>Invoice {{invoice_number}} for {{amount}} is due on {{due_date}}.</p>", nil,
         #"{"invoice_number":"INV-2026-0488","amount":"\u00a3189.00","due_date":"2026-05-15"}"#),
        ("{{a}} & {{b}}", "{{a}} <{{b}}> {{{a}}} {{&b}} {{ a }} {{{ b }}} {{& a }}", "{{a}}|{{{b}}}|{{&a}}",
         #"{"a":"x < y & 'z'","b":"\"q\" > p"}"#),
        ("n={{n}} t={{t}} f={{f}}", "{{n}} {{t}} {{f}} {{z}}", "{{n}}{{z}}", #"{"n":-12.50e3,"t":true,"f":false,"z":null}"#),
        ("{{o.p.q}}", "<b>{{o.p.q}}</b> {{o.r}} {{o.missing}} {{o.p.q.deeper}}", nil, #"{"o":{"p":{"q":"deep & <d>"},"r":7}}"#),
        ("Hi {{name}}", "&{{name}}&", "line one\n{{name}}\r\nline three\n", #"{"name":"e\u0301 & \u00e9 &\u0301 <\u0338 ' \"\u0308"}"#),
        ("{{k}}", "{{k}}", nil, #"{"k":"\u0000 \u001b \u007f <k>"}"#),
        ("no variables at all", "<p>plain { braces } and }} and {</p>", "{single} {{x}}}", #"{"x":"y"}"#),
        ("{{a-b}}{{c_d}}{{E9}}", "{{a-b}}{{c_d}}{{E9}}", nil, #"{"a-b":"1","c_d":"<2>","E9":"3"}"#),
        ("  {{x}}  ", "\n  {{x}}\n", " x\n{{x}}", #"{"x":"\ud83d\udce6 \u2014 \u00fc"}"#),
        ("{{x}}{{x}}{{x}}", "", "", #"{"x":""}"#),
    ]

    @Test(arguments: 0..<cases.count)
    func rendersAsSwiftMustacheDoes(i: Int) throws {
        let c = FlatTemplateTests.cases[i]
        let t = try EmailTemplate(identifier: "t", subject: c.subject, html: c.html, text: c.text)
        #expect(t.flat != nil, "case \(i) should take the fast path")
        let d = data(c.json)
        #expect(t.render(d) == t.renderWithMustache(d))
    }

    @Test func escapesAsExpected() throws {
        let t = try EmailTemplate(identifier: "t", subject: "{{a}}", html: "{{a}}|{{{a}}}", text: "{{a}}")
        let r = t.render(data(#"{"a":"<a href='x'>\"&\"</a>"}"#))
        #expect(r.subject == #"<a href='x'>"&"</a>"#)
        #expect(r.html == #"&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;|<a href='x'>"&"</a>"#)
        #expect(r.text == #"<a href='x'>"&"</a>"#)
    }

    @Test(arguments: [
        ("s", "{{#items}}{{name}}{{/items}}", nil),   // a section
        ("s", "{{^vip}}x{{/vip}}", nil),              // an inverted section
        ("s", "{{! a comment }}x", nil),              // a comment (standalone lines vanish)
        ("s", "{{.}}", nil),                          // the whole context
        ("s", "{{a..b}}", nil),                       // an empty name segment
        ("s", "x\n  ", nil),                          // a last line of blanks (swift-mustache drops it)
        ("s", "x\u{2028}y", nil),                     // a line break other than LF and CR
        ("s", "x", "\n{{a}}"),                        // a raw part whose first line is blank
        ("   ", "x", nil),                            // a raw part that is only blanks
    ] as [(String, String, String?)])
    func otherTemplatesTakeSwiftMustache(subject: String, html: String, text: String?) throws {
        let t = try EmailTemplate(identifier: "t", subject: subject, html: html, text: text)
        #expect(t.flat == nil)
    }

    @Test func aValueThatIsAnArrayOrAnObjectFallsBack() throws {
        let t = try EmailTemplate(identifier: "t", subject: "{{a}}", html: "<p>{{b}}</p>", text: nil)
        #expect(t.flat != nil)
        for json in [#"{"a":"x","b":[1,"<2>"]}"#, #"{"a":{"k":"v"},"b":"y"}"#] {
            let d = data(json)
            #expect(t.flat?.subject.render(d) == nil || t.flat?.html.render(d) == nil)
            #expect(t.render(d) == t.renderWithMustache(d))
        }
    }

    /// Seeded random templates and data: text with every character the escaping and the
    /// parser care about, variables in all three forms with blanks inside the braces, values
    /// of every scalar kind, nested names, missing names and nulls.
    @Test func randomCasesRenderAsSwiftMustacheDoes() throws {
        var rng = SplitMix(seed: 0x7151_C171)
        let texts = ["<", ">", "&", "\"", "'", " ", "\n", "\r\n", "\t", "{", "}", "}}", "e\u{301}", "&\u{301}", "<\u{338}",
                     "é", "📦", "—", "plain words", "a", "0", "=", "#", "!", "/"]
        let names = ["a", "b", "c", "o.p", "o.q.r", "missing", "nil", "o.missing"]
        let values = ["\"<&>\"", "\"'quoted' \\\"x\\\"\"", "\"e\\u0301&\\u0301\"", "12.50", "-0", "1e3", "true", "false",
                      "null", "\"\"", "\"\\ud83d\\udce6 & co\"", "\"line\\nbreak\""]
        var checked = 0
        for _ in 0..<4000 {
            func source() -> String {
                var s = ""
                for _ in 0..<rng.next(8) {
                    if rng.next(2) == 0 {
                        s += texts[rng.next(texts.count)]
                    } else {
                        let n = names[rng.next(names.count)]
                        let pad = ["", " ", "  ", "\t"][rng.next(4)]
                        switch rng.next(3) {
                        case 0: s += "{{" + pad + n + pad + "}}"
                        case 1: s += "{{{" + pad + n + pad + "}}}"
                        default: s += "{{&" + pad + n + pad + "}}"
                        }
                    }
                }
                return s
            }
            func value() -> String { values[rng.next(values.count)] }
            let json = #"{"a":\#(value()),"b":\#(value()),"c":\#(value()),"nil":null,"o":{"p":\#(value()),"q":{"r":\#(value())}}}"#
            let subject = source(), html = source(), text: String? = rng.next(2) == 0 ? nil : source()
            guard let t = try? EmailTemplate(identifier: "t", subject: subject, html: html, text: text), t.flat != nil else { continue }
            let d = data(json)
            let fast = t.render(d), slow = t.renderWithMustache(d)
            #expect(fast == slow, "subject \(subject.debugDescription) html \(html.debugDescription) text \(String(describing: text?.debugDescription)) data \(json)")
            checked += 1
        }
        #expect(checked > 200)
    }
}

/// A small seeded generator (SplitMix64), so a failing random case is the same on every run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int(z % UInt64(bound))
    }
}
