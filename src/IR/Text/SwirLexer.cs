using System.Globalization;
using System.Text;

namespace ShiftWise.IR.Text;

/// <summary>Token kinds of the .swir format.</summary>
public enum TokenKind
{
    /// <summary>A bare word: keywords, op names, attribute names, dtypes, enum values.</summary>
    Word,
    /// <summary>%name: a value.</summary>
    Value,
    /// <summary>@name: a parameter.</summary>
    Param,
    /// <summary>An integer literal.</summary>
    Int,
    /// <summary>A float literal.</summary>
    Float,
    /// <summary>A double-quoted string.</summary>
    String,
    /// <summary>One of { } ( ) [ ] , : =.</summary>
    Punct,
    /// <summary>A line break (statements end at line breaks).</summary>
    Newline,
    /// <summary>End of input.</summary>
    End,
}

/// <summary>A token with its text and 1-based position.</summary>
public readonly record struct Token(TokenKind Kind, string Text, int Line, int Column);

/// <summary>Splits .swir text into tokens; '#' starts a comment that runs to the end of the line.</summary>
public sealed class SwirLexer
{
    private readonly string _src;
    private readonly string _file;
    private int _pos;
    private int _line = 1;
    private int _col = 1;

    /// <summary>Creates a lexer; <paramref name="file"/> labels errors.</summary>
    public SwirLexer(string source, string file)
    {
        _src = source;
        _file = file;
    }

    /// <summary>All tokens, ending with <see cref="TokenKind.End"/>.</summary>
    public List<Token> Tokenize()
    {
        var list = new List<Token>();
        while (true)
        {
            var t = Next();
            list.Add(t);
            if (t.Kind == TokenKind.End) return list;
        }
    }

    /// <summary>
    /// The next token (<see cref="TokenKind.End"/> at the end, and again on every later call): the parser reads
    /// tokens as it goes, so a large file is never held as a list of tokens.
    /// </summary>
    public Token Next()
    {
        while (_pos < _src.Length)
        {
            char c = _src[_pos];
            if (c is ' ' or '\t' or '\r')
            {
                Advance();
            }
            else if (c == '#')
            {
                while (_pos < _src.Length && _src[_pos] != '\n') Advance();
            }
            else
            {
                break;
            }
        }
        int line = _line, col = _col;
        if (_pos >= _src.Length) return new Token(TokenKind.End, "", line, col);
        char ch = _src[_pos];
        if (ch == '\n')
        {
            Advance();
            return new Token(TokenKind.Newline, "\n", line, col);
        }
        if (ch is '{' or '}' or '(' or ')' or '[' or ']' or ',' or ':' or '=')
        {
            Advance();
            return new Token(TokenKind.Punct, PunctText(ch), line, col);
        }
        if (ch is '%' or '@')
        {
            Advance();
            var kind = ch == '%' ? TokenKind.Value : TokenKind.Param;
            if (_pos < _src.Length && _src[_pos] == '"') return new Token(kind, ReadString(), line, col);
            string name = ReadWhile(IsNameChar);
            if (name.Length == 0) throw Error(line, col, $"expected a name after '{ch}'");
            return new Token(kind, name, line, col);
        }
        if (ch == '"') return new Token(TokenKind.String, ReadString(), line, col);
        if (char.IsAsciiDigit(ch) || ch == '-' || ch == '+') return ReadNumber(line, col);
        if (char.IsAsciiLetter(ch) || ch == '_') return new Token(TokenKind.Word, ReadWhile(IsNameChar), line, col);
        throw Error(line, col, $"unexpected character '{Printable(ch)}'");
    }

    private Token ReadNumber(int line, int col)
    {
        int start = _pos;
        if (_src[_pos] is '-' or '+') Advance();
        if (_pos >= _src.Length || !char.IsAsciiDigit(_src[_pos])) throw Error(line, col, "expected a number");
        bool isFloat = false;
        SkipWhile(char.IsAsciiDigit);
        if (_pos < _src.Length && _src[_pos] == '.')
        {
            isFloat = true;
            Advance();
            if (SkipWhile(char.IsAsciiDigit) == 0) throw Error(_line, _col, "expected digits after '.'");
        }
        if (_pos < _src.Length && _src[_pos] is 'e' or 'E')
        {
            isFloat = true;
            Advance();
            if (_pos < _src.Length && _src[_pos] is '-' or '+') Advance();
            if (SkipWhile(char.IsAsciiDigit) == 0) throw Error(_line, _col, "expected an exponent");
        }
        if (_pos < _src.Length && (char.IsAsciiLetter(_src[_pos]) || _src[_pos] == '_'))
        {
            throw Error(_line, _col, $"unexpected '{_src[_pos]}' in a number");
        }
        var span = _src.AsSpan(start, _pos - start);
        if (!isFloat && SmallInt(span) is { } small) return new Token(TokenKind.Int, small, line, col);
        string text = span.ToString();
        if (isFloat)
        {
            double v = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            if (!double.IsFinite(v)) throw Error(line, col, $"number {text} is out of range");
        }
        else if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
        {
            throw Error(line, col, $"integer {text} is out of range");
        }
        return new Token(isFloat ? TokenKind.Float : TokenKind.Int, text, line, col);
    }

    private string ReadString()
    {
        int line = _line, col = _col;
        Advance();
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _src.Length || _src[_pos] == '\n') throw Error(line, col, "unterminated string");
            char c = _src[_pos];
            Advance();
            if (c == '"') return sb.ToString();
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            if (_pos >= _src.Length) throw Error(line, col, "unterminated string");
            char e = _src[_pos];
            int el = _line, ec = _col;
            Advance();
            switch (e)
            {
                case '"': sb.Append('"'); break;
                case '\\': sb.Append('\\'); break;
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'u':
                    if (_pos + 4 > _src.Length || !int.TryParse(_src.AsSpan(_pos, 4), NumberStyles.AllowHexSpecifier,
                            CultureInfo.InvariantCulture, out int code))
                    {
                        throw Error(el, ec, "\\u needs four hex digits");
                    }
                    for (int i = 0; i < 4; i++) Advance();
                    sb.Append((char)code);
                    break;
                default:
                    throw Error(el, ec, $"unknown escape '\\{Printable(e)}'");
            }
        }
    }

    // the text of small integers written canonically (no sign but '-', no leading zero), shared: the shift tables of
    // an SW network are a million of them
    private const int SmallMin = -1024, SmallMax = 4096;
    private static readonly string?[] SmallInts = new string?[SmallMax - SmallMin + 1];

    private static string? SmallInt(ReadOnlySpan<char> s)
    {
        var digits = s.Length > 0 && s[0] == '-' ? s[1..] : s;
        if (digits.Length == 0 || digits.Length > 4 || s[0] == '+' || (digits[0] == '0' && s.Length > 1)) return null;
        int v = int.Parse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        if (v is < SmallMin or > SmallMax) return null;
        ref var slot = ref SmallInts[v - SmallMin];
        return slot ??= s.ToString();
    }

    private static string PunctText(char c) => c switch
    {
        '{' => "{",
        '}' => "}",
        '(' => "(",
        ')' => ")",
        '[' => "[",
        ']' => "]",
        ',' => ",",
        ':' => ":",
        _ => "=",
    };

    private int SkipWhile(Func<char, bool> pred)
    {
        int start = _pos;
        while (_pos < _src.Length && pred(_src[_pos])) Advance();
        return _pos - start;
    }

    private string ReadWhile(Func<char, bool> pred)
    {
        int start = _pos;
        while (_pos < _src.Length && pred(_src[_pos])) Advance();
        return _src[start.._pos];
    }

    private void Advance()
    {
        if (_src[_pos] == '\n')
        {
            _line++;
            _col = 1;
        }
        else
        {
            _col++;
        }
        _pos++;
    }

    private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '.';

    private static string Printable(char c) => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString();

    private SwirParseException Error(int line, int col, string what) => new(_file, line, col, what);
}
