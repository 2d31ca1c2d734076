/// Templates: rendering (escaping per part, sections over arrays, conditionals, dotted
/// names) and missing-variable detection, as tables.
import JSON
import Testing
@testable import Templates

func data(_ json: String) -> JSONValue { try! JSONParser.parse(Array(json.utf8)) }

@Suite struct TemplatesTests {
    @Test func invoiceRendersWithEscapingOnlyInHTML() throws {
        let t = try EmailTemplate(identifier: "invoice_delivery",
                                  subject: "Invoice {{invoice_number}} — {{customer}}",
                                  html: "<p>Dear {{customer}}, amount {{amount}} due {{due_date}}. {{{signature}}}</p>",
                                  text: "Dear {{customer}}, amount {{amount}}")
        let r = t.render(data(#"{"invoice_number":"INV-7","customer":"A & <B>","amount":12.50,"due_date":"2026-12-01","signature":"<b>S</b>"}"#))
        #expect(r.subject == "Invoice INV-7 — A & <B>")
        #expect(r.html == "<p>Dear A &amp; &lt;B&gt;, amount 12.50 due 2026-12-01. <b>S</b></p>")
        #expect(r.text == "Dear A & <B>, amount 12.50")
    }

    @Test func sectionsOverArraysAndConditionals() throws {
        let t = try EmailTemplate(identifier: "order", subject: "Order {{id}}",
                                  html: "{{#items}}<li>{{name}} x{{qty}}</li>{{/items}}{{^items}}none{{/items}}{{#vip}}VIP{{/vip}}",
                                  text: nil)
        #expect(t.requiredVariables == ["id"])
        #expect(t.render(data(#"{"id":1,"items":[{"name":"<a>","qty":2},{"name":"b","qty":1}],"vip":true}"#)).html
                == "<li>&lt;a&gt; x2</li><li>b x1</li>VIP")
        #expect(t.render(data(#"{"id":1,"items":[]}"#)).html == "none")
    }

    @Test(arguments: [
        ("{{a}} {{b.c}} {{#s}}{{inner}}{{/s}}", #"{"a":1}"#, ["b.c"]),
        ("{{a}} {{b.c}}", #"{"a":1,"b":{"c":"x"}}"#, []),
        ("{{a}} {{{raw}}} {{& amp}}", #"{}"#, ["a", "raw", "amp"]),
        ("{{a}}", #"{"a":null}"#, ["a"]),
        ("{{! comment }}{{a}}", #"{"a":false}"#, []),
        ("{{#s}}{{x}}{{/s}}{{^t}}{{y}}{{/t}}", #"{}"#, []),
    ])
    func missingVariables(html: String, json: String, missing: [String]) throws {
        let t = try EmailTemplate(identifier: "t", subject: "s", html: html, text: nil)
        #expect(t.missingVariables(in: data(json)) == missing)
    }

    @Test(arguments: [
        "{{#a}}unclosed", "{{/a}}", "{{#a}}{{/b}}", "{{a", "{{> partial}}", "{{=<% %>=}}", "{{bad name}}", "{{}}",
    ])
    func malformedTemplatesAreRejected(html: String) {
        #expect(throws: TemplateError.self) { try EmailTemplate(identifier: "t", subject: "s", html: html, text: nil) }
    }

    @Test func subjectPartIsCheckedToo() {
        #expect(throws: TemplateError.self) { try EmailTemplate(identifier: "t", subject: "{{#x}}", html: "h", text: nil) }
        let t = try? EmailTemplate(identifier: "t", subject: "{{n}}", html: "h", text: "{{m}}")
        #expect(t?.requiredVariables == ["n", "m"])
    }
}
