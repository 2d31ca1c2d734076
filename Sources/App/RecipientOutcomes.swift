/// RecipientOutcomes: a transaction's result for a message with several recipients, recipient
/// by recipient (SPEC §4 "Beyond the seed", as Postfix does it): one refused at RCPT keeps its
/// own reply — for good if 5xx, pending (retried alone in a later transaction) if 4xx; one the
/// relay took at RCPT shares the transaction's outcome (accepted once its data was taken). The
/// message is `sent` when nothing is pending and at least one recipient was given it (the
/// reply then names any that were refused), `failed` when none can be, `deferred` while any is
/// pending.
import SMTPProtocol
import Store

enum RecipientOutcomes {
    /// Updates the pending recipients of `list` (in order, the envelope's) from `outcome` and
    /// their RCPT `replies`; returns the message's outcome.
    static func settle(_ list: inout [RecipientState], _ outcome: DeliveryOutcome, replies: [SMTPReply]?) -> DeliveryOutcome {
        let pending = list.indices.filter { list[$0].status == .pending }
        for (k, i) in pending.enumerated() {
            if let replies, k < replies.count, !(replies[k].code == 250 || replies[k].code == 251) {
                list[i].lastReply = replies[k].description
                list[i].status = replies[k].isPermanent ? .failed : .pending
                continue
            }
            list[i].lastReply = outcome.reply.description
            switch outcome {
            case .sent: list[i].status = .accepted
            case .failed: list[i].status = .failed
            case .deferred, .uncertain: list[i].status = .pending
            }
        }
        return summary(list, outcome.reply)
    }

    /// The retry policy gave up: every pending recipient fails with `reason`.
    static func giveUp(_ list: inout [RecipientState], after reason: String) -> DeliveryOutcome {
        for i in list.indices where list[i].status == .pending {
            list[i].status = .failed
            list[i].lastReply = (list[i].lastReply.map { $0 + " " } ?? "") + "(\(reason))"
        }
        return summary(list, nil)
    }

    /// A reply whose description is `code text` (the audit's last reply for the message).
    static func reply(_ code: Int, _ text: String) -> SMTPReply { SMTPReply(code: code, lines: [text]) }

    /// `text` of a stored reply without its leading code ("550 5.1.1 x" → "5.1.1 x").
    static func afterCode(_ r: String) -> String {
        let parts = r.split(separator: " ", maxSplits: 1)
        return parts.count == 2 && parts[0].count == 3 && Int(parts[0]) != nil ? String(parts[1]) : r
    }

    static func summary(_ list: [RecipientState], _ transactionReply: SMTPReply?) -> DeliveryOutcome {
        let pending = list.filter { $0.status == .pending }
        let failed = list.filter { $0.status == .failed }
        let accepted = list.filter { $0.status == .accepted }
        func named(_ rs: [RecipientState]) -> String { rs.map { "\($0.address): \($0.lastReply ?? "")" }.joined(separator: "; ") }
        if !pending.isEmpty {
            return .deferred(reply(451, "\(pending.count) of \(list.count) recipients pending — \(named(pending))"))
        }
        if accepted.isEmpty {
            return .failed(reply(550, "every recipient refused — \(named(failed))"))
        }
        let sent = transactionReply.flatMap { $0.isPositive ? $0.description : nil } ?? accepted[0].lastReply ?? "250"
        if failed.isEmpty { return .sent(reply(250, afterCode(sent))) }
        return .sent(reply(250, "\(afterCode(sent)) — refused: \(named(failed))"))
    }
}
