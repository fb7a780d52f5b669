// An out-of-tree plugin: built against an installed SDK with
// find_package(taskhost), see CMakeLists.txt and the README ("Writing a plugin").
#include <taskhost/sdk.hpp>

#include <cctype>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using taskhost::json;
using namespace taskhost;

namespace {

json count_words(std::string text) {
    std::istringstream in(text);
    std::map<std::string, int> counts;
    int total = 0;
    for (std::string word; in >> word; ++total) ++counts[word];
    return {{"words", total}, {"distinct", counts.size()}, {"counts", counts}};
}

json shout(std::vector<std::string> words, std::string suffix) {
    std::string out;
    for (const std::string &word : words) {
        if (!out.empty()) out += ' ';
        for (char c : word) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return {{"text", out + suffix}};
}

}  // namespace

TASKHOST_PLUGIN("wordcount", "1.0.0",
                task("count_words", count_words)
                    .doc("Counts the words of a text, and each distinct word.")
                    .tags({"example", "text"})
                    .params("text"),
                task("shout", shout)
                    .doc("Upper-cases words and joins them.")
                    .tags({"example", "text"})
                    .param("words")
                    .param("suffix", "!"));
