#!/usr/bin/env python3
"""Makes tiny Hugging Face models on the spot, with nothing downloaded: a byte-level BPE tokenizer
trained by the `tokenizers` library on a few lines (with a chat template), a Llama sequence
classifier with one label (a reward model), and Llama causal LMs (a policy and a reference).
Weights are random from a fixed seed, so every run makes the same models.

    python make_tiny_models.py OUT_DIR      # writes OUT_DIR/{rm,lm,ref-lm}, each loadable with from_pretrained

For tests, benchmarks and the TRL and on-policy examples; a real setup names real models instead.
"""
import os
import sys

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

LINES = [
    "What is two plus two? Two plus two is 4.",
    "Name a colour: red, blue, green, yellow.",
    "Maria saves 8 dollars each week for 11 weeks. How much does she save? 8*11=88. The answer is 88.",
    "Write one sentence about the sea. The sea is wide and deep and blue.",
    "Let us think step by step. First add, then multiply, then check the answer.",
    "A: 77. The answer is 42. #### 12",
]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def make_tokenizer():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(LINES * 20, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                pad_token="<pad>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def config(tokenizer, **extra):
    return transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False, **extra)


def main(out):
    tokenizer = make_tokenizer()
    torch.manual_seed(0)
    rm = transformers.LlamaForSequenceClassification(config(tokenizer, num_labels=1))
    torch.manual_seed(1)
    lm = transformers.LlamaForCausalLM(config(tokenizer))
    torch.manual_seed(2)
    ref = transformers.LlamaForCausalLM(config(tokenizer))
    for name, model in (("rm", rm), ("lm", lm), ("ref-lm", ref)):
        path = os.path.join(out, name)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    print("tiny models written to", out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_models.py OUT_DIR")
    main(sys.argv[1])
