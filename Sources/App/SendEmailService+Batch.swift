/// `POST /api/send_email/batch` (SPEC §4): 1–500 messages with every field send_email takes,
/// under one Idempotency-Key, all accepted messages durable in one commit before the answer
/// (`CommitItem.batch`: the batch's record and its messages, all or nothing).
///
/// `strict` (the default): any invalid message → 422 for the whole batch, its fields keyed
/// `messages[i].field`, nothing stored (the key stays free). `permissive`: the valid ones are
/// accepted; the answer lists each message's send_email answer or error body, with its
/// `index`. The batch's answer is its idempotency record: a replay returns it byte for byte.
import Auth
import Idempotency
import JSON
import SendAPI
import Store

extension SendEmailService {
    public static let maxBatchMessages = 500

    func buildBatch(_ body: JSONValue, token: StoredToken, key: String, fingerprint: [UInt8], now: Int64) throws -> CommitItem {
        var problems: [(String, [String])] = []
        if case .object(let members) = body {
            for m in members where m.key != "messages" && m.key != "validation" {
                problems.append((m.key, ["is not a known field (a batch takes messages and validation)"]))
            }
        }
        var strict = true
        switch body["validation"] {
        case nil, .null?: break
        case .string("strict")?: strict = true
        case .string("permissive")?: strict = false
        default: problems.append(("validation", ["must be \"strict\" or \"permissive\""]))
        }
        var list: [JSONValue] = []
        switch body["messages"] {
        case .array(let a)? where (1...SendEmailService.maxBatchMessages).contains(a.count): list = a
        case .array(let a)?: problems.append(("messages", ["must hold 1 to \(SendEmailService.maxBatchMessages) messages, not \(a.count)"]))
        case nil, .null?: problems.append(("messages", ["is required: an array of send_email bodies"]))
        case let v?: problems.append(("messages", ["must be an array of send_email bodies, not \(v.typeName)"]))
        }
        guard problems.isEmpty else { throw APIError.validation(problems) }

        var built: [Result<NewMessage, APIError>] = []
        built.reserveCapacity(list.count)
        for (i, v) in list.enumerated() {
            guard case .object = v else {
                built.append(.failure(.validation([("messages[\(i)]", ["must be a send_email body (an object), not \(v.typeName)"])])))
                continue
            }
            do {
                built.append(.success(try build(v, token: token, key: key, fingerprint: fingerprint, now: now)))
            } catch let e as APIError {
                built.append(.failure(e))
            }
        }
        let invalid = built.enumerated().compactMap { i, r -> (Int, APIError)? in
            if case .failure(let e) = r { return (i, e) }
            return nil
        }
        if strict && !invalid.isEmpty {
            var fields: [(String, [String])] = []
            for (i, e) in invalid {
                let prefix = "messages[\(i)]"
                fields += e.fields.isEmpty ? [(prefix, [e.message])] : e.fields.map { (name, texts) in
                    (name.hasPrefix(prefix) ? name : "\(prefix).\(name)", texts)
                }
            }
            throw APIError.validation(fields, message: "\(invalid.count) of \(list.count) messages are invalid; nothing was accepted (strict).")
        }
        // The answer: each message's own body, with its index.
        var answer = "{\"ok\":true,\"data\":["
        answer.reserveCapacity(32 + list.count * 96)
        var messages: [(NewMessage, sending: Bool)] = []
        for (i, r) in built.enumerated() {
            if i > 0 { answer += "," }
            let one: String
            switch r {
            case .success(let m):
                messages.append((m, false))
                one = String(decoding: m.responseBody, as: UTF8.self)
            case .failure(let e):
                one = e.jsonBody
            }
            answer += one.dropLast() + ",\"index\":\(i)}"
        }
        answer += "]}"
        let record = IdempotencyRecord(fingerprint: fingerprint, status: 200, body: Array(answer.utf8), createdAt: now)
        return .batch(tokenID: token.id, key: key, record, messages)
    }
}
