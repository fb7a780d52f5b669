// Example plugin "data": a CSV summary (the guide's file-processing task)
// and the extract/transform/load trio used to show tag filtering.
#include <taskhost/sdk.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

using taskhost::json;
using namespace taskhost;

namespace {

using Row = std::vector<std::string>;

// RFC 4180: comma separated; a field may be quoted, and then holds commas,
// line breaks and "" for a quote; records end in LF or CRLF. Blank lines are
// skipped (as pandas does); a stray quote inside an unquoted field is kept.
std::vector<Row> parse_csv(std::string_view text) {
    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
    std::vector<Row> rows;
    Row row;
    std::string field;
    bool in_quotes = false;
    bool row_has_quotes = false;
    const auto end_field = [&] {
        row.push_back(std::move(field));
        field.clear();
    };
    const auto end_row = [&] {
        end_field();
        const bool blank = row.size() == 1 && row[0].empty() && !row_has_quotes;
        if (!blank) rows.push_back(std::move(row));
        row.clear();
        row_has_quotes = false;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_quotes) {
            if (c != '"') field += c;
            else if (i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
            else in_quotes = false;
        } else if (c == '"' && field.empty()) {
            in_quotes = row_has_quotes = true;
        } else if (c == ',') {
            end_field();
        } else if (c == '\n' || c == '\r') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
            end_row();
        } else {
            field += c;
        }
    }
    if (in_quotes) throw std::runtime_error("malformed CSV: a quoted field is not closed");
    if (!field.empty() || !row.empty() || row_has_quotes) end_row();
    return rows;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Cells pandas reads as missing by default (the common ones).
bool is_missing(std::string_view cell) {
    for (std::string_view na : {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})
        if (cell == na) return true;
    return false;
}

std::optional<double> parse_number(std::string_view cell) {
    if (!cell.empty() && cell.front() == '+') cell.remove_prefix(1);  // from_chars rejects '+'
    double value = 0;
    const auto [end, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), value);
    if (cell.empty() || ec != std::errc() || end != cell.data() + cell.size() || !std::isfinite(value))
        return std::nullopt;
    return value;
}

// count/mean/std/min/max of one column (std is the sample deviation, as
// pandas' describe() gives; null below two values). Welford's update keeps
// the variance accurate for large values.
struct Stats {
    std::size_t count = 0;
    double mean = 0, m2 = 0;
    double min = std::numeric_limits<double>::infinity();
    double max = -std::numeric_limits<double>::infinity();

    void add(double x) {
        ++count;
        const double delta = x - mean;
        mean += delta / static_cast<double>(count);
        m2 += delta * (x - mean);
        min = std::min(min, x);
        max = std::max(max, x);
    }
    json to_json() const {
        json std_dev = count > 1 ? json(std::sqrt(m2 / static_cast<double>(count - 1))) : json(nullptr);
        return {{"count", count}, {"mean", mean}, {"std", std_dev}, {"min", min}, {"max", max}};
    }
};

std::string read_file(const std::string &path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw std::runtime_error("CSV file not found: '" + path + "'");
    if (std::filesystem::is_directory(path, ec))
        throw std::runtime_error("CSV path is a directory, not a file: '" + path + "'");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open CSV file '" + path + "'");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

json process_csv(std::string filepath) {
    const std::vector<Row> rows = parse_csv(read_file(filepath));
    if (rows.empty()) return {{"rows", 0}, {"columns", json::array()}, {"summary", json::object()}};

    const Row &header = rows.front();
    // A column is numeric when every present cell is a number (pandas'
    // describe() only summarises numeric columns).
    std::vector<Stats> stats(header.size());
    std::vector<bool> numeric(header.size(), true);
    for (std::size_t r = 1; r < rows.size(); ++r) {
        if (rows[r].size() > header.size()) {
            throw std::runtime_error("malformed CSV: record " + std::to_string(r + 1) + " has " +
                                     std::to_string(rows[r].size()) + " fields, the header has " +
                                     std::to_string(header.size()));
        }
        for (std::size_t c = 0; c < rows[r].size(); ++c) {  // short records: the rest is missing
            const std::string_view cell = trim(rows[r][c]);
            if (!numeric[c] || is_missing(cell)) continue;
            if (const auto v = parse_number(cell)) stats[c].add(*v);
            else numeric[c] = false;
        }
    }

    json summary = json::object();
    for (std::size_t c = 0; c < header.size(); ++c)
        if (numeric[c] && stats[c].count > 0) summary[header[c]] = stats[c].to_json();
    return {{"rows", rows.size() - 1}, {"columns", header}, {"summary", summary}};
}

json extract_data() { return {{"records", 100}}; }

json transform_data() { return {{"transformed", true}}; }

json load_data() { return {{"loaded", true}}; }

}  // namespace

TASKHOST_PLUGIN(
    "data", "1.0.0",
    task("process_csv", process_csv).doc("Process CSV file.").tags({"data", "processing"}).params("filepath"),
    task("extract_data", extract_data).doc("Extract data from source.").tags({"data", "etl", "extract"}),
    task("transform_data", transform_data).doc("Transform extracted data.").tags({"data", "etl", "transform"}),
    task("load_data", load_data).doc("Load transformed data into the destination.").tags({"data", "etl", "load"}));
