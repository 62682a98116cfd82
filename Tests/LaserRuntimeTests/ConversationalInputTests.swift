import Foundation
import LaserCore
import LaserWire
import Testing
@testable import LaserRuntime

/// TRL's conversational format (https://huggingface.co/docs/trl/dataset_formats#conversational):
/// `prompt` as a list of {role, content} messages, candidates optionally as one assistant message,
/// and batch files that write prompt, chosen and rejected back as message lists.
@Suite struct ConversationalInputTests {
    let reader = PromptReader(contextDimension: 16)

    func read(_ text: String) throws -> [PromptRecord] {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try text.write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        return try reader.read(path: dir + "/in.jsonl")
    }

    func error(_ text: String) -> String {
        do { _ = try read(text); return "no error" } catch { return "\(error)" }
    }

    @Test func aOneTurnConversationReadsLikeThePlainPrompt() throws {
        let records = try read(
            """
            {"id": "c", "prompt": [{"role": "user", "content": "What is 2+2? \\u00e9"}], "candidates": [[{"role": "assistant", "content": "The answer is 4"}], "A: 5", {"text": "4", "correct": false}], "reference": "4"}
            {"id": "p", "prompt": "What is 2+2? é", "candidates": ["The answer is 4", "A: 5", {"text": "4", "correct": false}], "reference": "4"}
            """)
        let (c, p) = (records[0], records[1])
        #expect(c.prompt == p.prompt)
        #expect(c.context == p.context)
        #expect(c.candidates.map(\.text) == p.candidates.map(\.text))
        #expect(c.candidates.map(\.correct) == [true, false, false])
        #expect(c.messagesJSON == #"[{"role":"user","content":"What is 2+2? é"}]"#)
        #expect(p.messagesJSON == nil)
    }

    @Test func severalMessagesAreRenderedWithRolesAndWrittenBackWhole() throws {
        let records = try read(
            """
            {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "ann"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}], "candidates": ["4", "5"]}
            """)
        #expect(records[0].prompt == "system: Be brief.\n\nuser: Hi\n\nassistant: Hello\n\nuser: 2+2?")
        // Keys the RMs do not use (name) are kept for the batch file, in input order.
        #expect(
            records[0].messagesJSON
                == #"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi","name":"ann"},{"role":"assistant","content":"Hello"},{"role":"user","content":"2+2?"}]"#
        )
    }

    @Test func malformedConversationsNameLineAndFix() {
        #expect(
            error(#"{"prompt": [], "candidates": ["a", "b"]}"#).contains(
                "in.jsonl:1: \"prompt\" is an empty list of messages"))
        #expect(
            error(#"{"prompt": ["hi"], "candidates": ["a", "b"]}"#).contains(
                "\"prompt\" message 0 must be an object {\"role\", \"content\"}, got a string"))
        #expect(
            error(#"{"prompt": [{"content": "hi"}], "candidates": ["a", "b"]}"#).contains(
                "\"prompt\" message 0 needs a non-empty string \"role\""))
        #expect(
            error(
                #"{"prompt": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "candidates": ["a", "b"]}"#
            )
            .contains("content given as a list of parts is not supported"))
        #expect(
            error(
                #"{"prompt": [{"role": "user", "content": "q"}], "candidates": [[{"role": "user", "content": "a"}], "b"]}"#
            )
            .contains(
                "candidate 0 is a list of 1 message(s); a conversational candidate must be one {\"role\": \"assistant\""
            ))
        #expect(
            error(#"{"prompt": [{"role": "user", "content": "q"}], "candidates": [[], "b"]}"#).contains(
                "candidate 0 is an empty list of messages"))
        #expect(
            error(#"{"prompt": 3, "candidates": ["a", "b"]}"#).contains(
                "\"prompt\" is missing or not a string or a list of {\"role\", \"content\"} messages"))
        #expect(
            error(#"{"prompt": [{"role": "user", "content": "a\u0000b"}], "candidates": ["a", "b"]}"#).contains(
                "prompt contains a NUL character"))
    }

    /// A resume replays batches with long candidate texts skimmed; a conversational prompt's long
    /// content must still come back whole (the bandit's context is featurized from it).
    @Test func skimmingKeepsAConversationalPrompt() throws {
        let long = String(repeating: "why ", count: 100)
        let line =
            #"{"id": "a", "prompt": [{"role": "user", "content": "\#(long)"}], "candidates": ["\#(long)", "short"]}"#
        let full = try Array(line.utf8).withUnsafeBytes { try reader.parse(bytes: $0, where: "x", defaultID: "d") }
        let skimmed = try Array(line.utf8).withUnsafeBytes {
            try reader.parse(bytes: $0, where: "x", defaultID: "d", skim: true)
        }
        #expect(full.prompt == long)
        #expect(
            skimmed.prompt == full.prompt && skimmed.context == full.context
                && skimmed.messagesJSON == full.messagesJSON)
    }

    @Test func pairAndBestOfNLinesAreTRLConversational() throws {
        let messages = #"[{"role":"user","content":"q \"x\""}]"#
        let pair = PreferencePair(
            prompt: "q \"x\"", chosen: "yes\n", rejected: "no", chosenScore: 1, rejectedScore: 0.5,
            rm: "length", promptID: "p1", iteration: 1, batch: 2, messagesJSON: messages)
        let line = JSONLines.line(pair)
        #expect(
            line
                == #"{"prompt":[{"role":"user","content":"q \"x\""}],"chosen":[{"role":"assistant","content":"yes\n"}],"rejected":[{"role":"assistant","content":"no"}],"chosen_score":1.0,"rejected_score":0.5,"rm":"length","prompt_id":"p1","iteration":1,"batch":2}"#
        )
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        #expect((object["chosen"] as! [[String: String]]) == [["role": "assistant", "content": "yes\n"]])
        #expect((object["prompt"] as! [[String: String]]) == [["role": "user", "content": "q \"x\""]])
    }
}
