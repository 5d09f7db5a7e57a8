// The parser of famq's Jinja2 subset: tokens -> syntax tree, refusing what
// famq does not implement and nesting deeper than kMaxNestingDepth.
// Internal to chat_template/.
#pragma once

#include <vector>

#include "chat_template/jinja_ast.h"
#include "chat_template/jinja_lexer.h"
#include "core/status.h"

namespace famq::jinja {

// Parses the tokens `lexer` produced; errors carry the lexer's "line:col".
Result<NodePtr> ParseTokens(const Lexer& lexer, std::vector<Token> tokens);

}  // namespace famq::jinja
