/// An IFEval-like checker: finds the verifiable instructions stated in the prompt and scores the
/// fraction of them a candidate satisfies, in [0, 1].
///
/// Recognised phrases (case-insensitive; N is digits or a number word one...twenty; 'X' in single
/// or double quotes, straight or curly):
/// - word count: "exactly N words", "at most N words", "no more than N words", "up to N words",
///   "at least N words", "no fewer/less than N words", "fewer/less than N words", "more than N words",
///   "N words or less/fewer/more" (a word is a whitespace-separated token holding a letter or digit);
/// - "all lowercase", "all in lowercase", "in lowercase", "lowercase letters only";
/// - "all uppercase", "all in uppercase", "in capital letters", "all capital letters";
/// - "end with 'X'", "end with the word 'X'", "end your response with (the word/phrase) 'X'";
/// - "include the word 'X'", "include the keyword(s) 'X' and 'Y'", "use/mention the word 'X'";
///   preceded by "do not"/"don't"/"never"/"avoid" the words are forbidden instead;
/// - "do not use any commas", "without (using any) commas", "no commas", "avoid commas";
/// - "N bullet points" (as in "as N bullet points"): exactly N lines starting with "- " or "* ";
/// - "wrap your entire response in double quotes" / "with double quotation marks".
///
/// A prompt with no recognised instruction gives every candidate 0 (no information), and so does an
/// empty candidate, which follows no instruction in any useful sense.
public struct InstructionFollowingRM: RewardModel {
    public let name: String

    /// An instruction checker under the given arm name.
    public init(name: String = "instruction-following") {
        self.name = name
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        let instructions = InstructionParser.instructions(in: request.prompt)
        guard !instructions.isEmpty else { return Array(repeating: 0, count: request.candidates.count) }
        return request.candidates.map { candidate in
            guard candidate.contains(where: { !$0.isWhitespace }) else { return 0 }
            let satisfied = instructions.filter { $0.isSatisfied(by: candidate) }.count
            return Double(satisfied) / Double(instructions.count)
        }
    }
}
