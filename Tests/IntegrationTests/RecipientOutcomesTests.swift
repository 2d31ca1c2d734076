/// RecipientOutcomes as a table: a transaction's outcome and its RCPT replies, recipient by
/// recipient, and the message's outcome that follows.
import SMTPProtocol
import Store
import Testing
@testable import App

@Suite struct RecipientOutcomesTests {
    static let ok = SMTPReply(code: 250, enhancedCode: "2.1.5", lines: ["2.1.5 ok"])
    static let queued = SMTPReply(code: 250, enhancedCode: "2.0.0", lines: ["2.0.0 queued as 7"])
    static let gone = SMTPReply(code: 550, enhancedCode: "5.1.1", lines: ["5.1.1 no such user"])
    static let busy = SMTPReply(code: 451, enhancedCode: "4.2.1", lines: ["4.2.1 busy"])
    static let lost = SMTPReply.local(421, "4.4.2", "connection lost while waiting for the reply to the end of data")
    static let rejected = SMTPReply(code: 554, enhancedCode: "5.6.0", lines: ["5.6.0 content rejected"])

    static func list(_ statuses: [RecipientState.Status]) -> [RecipientState] {
        statuses.enumerated().map { RecipientState(address: "r\($0.offset)@x.example", kind: $0.offset == 0 ? .to : .cc, status: $0.element) }
    }

    /// (recipients before, transaction outcome, RCPT replies for the pending ones, statuses after, message outcome kind)
    @Test(arguments: [
        ([.pending, .pending], DeliveryOutcome.sent(queued), [ok, ok], [.accepted, .accepted], "sent"),
        ([.pending, .pending, .pending], .sent(queued), [ok, gone, busy], [.accepted, .failed, .pending], "deferred"),
        ([.pending, .pending], .sent(queued), [ok, gone], [.accepted, .failed], "sent"),
        ([.pending, .pending], .failed(gone), [gone, gone], [.failed, .failed], "failed"),
        ([.pending, .pending], .failed(gone), [gone, busy], [.failed, .pending], "deferred"),
        // The data was refused after the RCPTs: those the relay took share that reply.
        ([.pending, .pending], .failed(rejected), [ok, ok], [.failed, .failed], "failed"),
        // Lost before the end-of-data reply: still pending (retried), the refused one keeps its 550.
        ([.pending, .pending], .deferred(lost), [ok, gone], [.pending, .failed], "deferred"),
        // The transaction ended before the RCPT replies: every pending one shares the outcome.
        ([.pending, .pending], .deferred(lost), nil, [.pending, .pending], "deferred"),
        // A later transaction for the one left pending: the accepted one is not touched.
        ([.accepted, .failed, .pending], .sent(queued), [ok], [.accepted, .failed, .accepted], "sent"),
    ] as [([RecipientState.Status], DeliveryOutcome, [SMTPReply]?, [RecipientState.Status], String)])
    func settle(before: [RecipientState.Status], outcome: DeliveryOutcome, replies: [SMTPReply]?, after: [RecipientState.Status], kind: String) {
        var l = Self.list(before)
        let o = RecipientOutcomes.settle(&l, outcome, replies: replies)
        #expect(l.map(\.status) == after)
        switch o {
        case .sent: #expect(kind == "sent", "\(o)")
        case .deferred: #expect(kind == "deferred", "\(o)")
        case .failed: #expect(kind == "failed", "\(o)")
        case .uncertain: #expect(kind == "uncertain", "\(o)")
        }
    }

    @Test func repliesNameTheRecipients() {
        var l = Self.list([.pending, .pending, .pending])
        let partial = RecipientOutcomes.settle(&l, .sent(Self.queued), replies: [Self.ok, Self.gone, Self.ok])
        #expect(partial.reply.description == "250 2.0.0 queued as 7 — refused: r1@x.example: 550 5.1.1 no such user")
        #expect(l[1].lastReply == "550 5.1.1 no such user" && l[0].lastReply == "250 2.0.0 queued as 7")
        var p = Self.list([.pending, .pending])
        let deferred = RecipientOutcomes.settle(&p, .sent(Self.queued), replies: [Self.busy, Self.ok])
        #expect(deferred.reply.description == "451 1 of 2 recipients pending — r0@x.example: 451 4.2.1 busy")
        let gaveUp = RecipientOutcomes.giveUp(&p, after: "gave up after 5 attempt(s)")
        #expect(p.map(\.status) == [.failed, .accepted])
        #expect(gaveUp.reply.description.hasPrefix("250 2.0.0 queued as 7 — refused: r0@x.example: 451 4.2.1 busy (gave up after 5 attempt(s))"))
    }

    @Test func storedFormRoundTrips() {
        let l = [RecipientState(address: "a@x.example", kind: .to, status: .accepted, lastReply: "250 ok\r\nevil"),
                 RecipientState(address: "ü@x.example", kind: .bcc), RecipientState(address: "c@x.example", kind: .cc, status: .failed, lastReply: "")]
        let back = RecipientState.decode(RecipientState.encode(l))
        #expect(back?.map(\.address) == ["a@x.example", "ü@x.example", "c@x.example"])
        #expect(back?.map(\.kind) == [.to, .bcc, .cc] && back?.map(\.status) == [.accepted, .pending, .failed])
        #expect(back?[0].lastReply == "250 ok  evil" && back?[1].lastReply == nil)
        #expect(RecipientState.decode(nil) == nil && RecipientState.decode("") == nil)
    }
}
