using System.Globalization;
using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Text;

/// <summary>
/// Parses .swir text into a verified <see cref="Graph"/>. Every error, syntax or verifier, is a
/// <see cref="SwirParseException"/> whose message starts with file:line:column.
/// </summary>
public sealed class SwirParser
{
    private readonly string _file;
    private readonly SwirLexer _lexer;
    private Token _cur;

    private SwirParser(string source, string file)
    {
        _file = file;
        _lexer = new SwirLexer(source, file);
        _cur = _lexer.Next();
    }

    /// <summary>Parses text; <paramref name="file"/> labels errors.</summary>
    public static Graph Parse(string source, string file = "<string>") => new SwirParser(source, file).ParseFile();

    /// <summary>Reads and parses a file.</summary>
    public static Graph ParseFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IrException($"{path}: cannot read: {e.Message}", e);
        }
        return Parse(text, path);
    }

    private Graph ParseFile()
    {
        SkipNewlines();
        ExpectWord("swir");
        var ver = Expect(TokenKind.Int, "a format version");
        if (ver.Text != SwirPrinter.FormatVersion.ToString(CultureInfo.InvariantCulture))
        {
            throw Error(ver, $"unsupported swir version {ver.Text} (this compiler reads {SwirPrinter.FormatVersion})");
        }
        EndOfStatement();
        SkipNewlines();
        ExpectWord("graph");
        var nameTok = Peek();
        string name = nameTok.Kind is TokenKind.Word or TokenKind.String
            ? Take().Text
            : throw Error(nameTok, "expected the graph's name");
        ExpectPunct("{");
        EndOfStatement();

        var inputs = new List<ValueDecl>();
        var pars = new List<ValueDecl>();
        var nodes = new List<Node>();
        var outputs = new List<string>();
        var where = new Dictionary<string, Token>(StringComparer.Ordinal);
        var types = new Dictionary<string, (TensorType Type, bool IsParam)>(StringComparer.Ordinal);
        string? weights = null;

        void Define(Token at, string n, TensorType t, bool isParam)
        {
            if (!types.TryAdd(n, (t, isParam))) throw Error(at, $"'{n}' is already defined");
            where[n] = at;
        }

        while (true)
        {
            SkipNewlines();
            var t = Peek();
            if (t is { Kind: TokenKind.Punct, Text: "}" })
            {
                Take();
                break;
            }
            if (t.Kind == TokenKind.Word && t.Text == "weights")
            {
                Take();
                weights = Expect(TokenKind.String, "the weights file name in quotes").Text;
            }
            else if (t.Kind == TokenKind.Word && t.Text is "input" or "param" or "buffer")
            {
                Take();
                bool isParam = t.Text != "input";
                var v = Expect(isParam ? TokenKind.Param : TokenKind.Value, isParam ? "@name" : "%name");
                ExpectPunct(":");
                var ty = ParseType();
                Define(v, v.Text, ty, isParam);
                (isParam ? pars : inputs).Add(new ValueDecl(v.Text, ty, t.Text == "buffer"));
            }
            else if (t.Kind == TokenKind.Word && t.Text == "output")
            {
                Take();
                do
                {
                    outputs.Add(ParseRef(types).Text);
                }
                while (TryPunct(","));
            }
            else if (t.Kind == TokenKind.Value)
            {
                nodes.Add(ParseNode(types, where, Define));
            }
            else if (t.Kind == TokenKind.End)
            {
                throw Error(t, "unexpected end of file: missing '}'");
            }
            else
            {
                throw Error(t,
                    $"expected a statement (weights, input, param, buffer, %value = op(...), output), got '{Show(t)}'");
            }
            EndOfStatement();
        }
        SkipNewlines();
        if (Peek().Kind != TokenKind.End) throw Error(Peek(), $"unexpected '{Show(Peek())}' after the graph");

        var g = new Graph(name, inputs.ToArray(), pars.ToArray(), nodes.ToArray(), outputs.ToArray())
        {
            WeightsFile = weights,
        };
        try
        {
            Verifier.Verify(g);
        }
        catch (VerifyException e)
        {
            var at = e.Node is not null && where.TryGetValue(e.Node, out var tok) ? tok : nameTok;
            throw new SwirParseException(_file, at.Line, at.Column, e.Message);
        }
        return g;
    }

    private Node ParseNode(Dictionary<string, (TensorType Type, bool IsParam)> types, Dictionary<string, Token> where,
        Action<Token, string, TensorType, bool> define)
    {
        var outs = new List<Token>();
        var outTypes = new List<TensorType>();
        do
        {
            outs.Add(Expect(TokenKind.Value, "%name"));
            ExpectPunct(":");
            outTypes.Add(ParseType());
        }
        while (TryPunct(","));
        ExpectPunct("=");
        var opTok = Expect(TokenKind.Word, "an op name");
        if (!OpTable.TryGet(opTok.Text, out var reader))
        {
            throw Error(opTok, $"unknown op '{opTok.Text}' (known: {string.Join(", ", OpTable.Names.Order())})");
        }
        ExpectPunct("(");
        var ins = new List<string>();
        if (!TryPunct(")"))
        {
            do
            {
                ins.Add(ParseRef(types).Text);
            }
            while (TryPunct(","));
            ExpectPunct(")");
        }
        var attrs = new Dictionary<string, AttrValue>(StringComparer.Ordinal);
        if (TryPunct("{"))
        {
            SkipNewlines();
            if (!TryPunct("}"))
            {
                do
                {
                    SkipNewlines();
                    var an = Expect(TokenKind.Word, "an attribute name");
                    ExpectPunct("=");
                    if (!attrs.TryAdd(an.Text, ParseAttrValue())) throw Error(an, $"attribute '{an.Text}' repeats");
                    SkipNewlines();
                }
                while (TryPunct(","));
                ExpectPunct("}");
            }
        }
        var r = new AttrReader(_file, opTok.Text, opTok.Line, opTok.Column, attrs);
        Op op;
        try
        {
            op = reader(r);
        }
        catch (IrException e) when (e is not SwirParseException)
        {
            throw Error(opTok, e.Message);
        }
        r.EnsureAllUsed();
        for (int k = 0; k < outs.Count; k++) define(outs[k], outs[k].Text, outTypes[k], false);
        where[outs[0].Text] = opTok;
        return new Node(op, ins.ToArray(), outs.Select(o => o.Text).ToArray(), outTypes.ToArray());
    }

    private AttrValue ParseAttrValue()
    {
        var t = Take();
        switch (t.Kind)
        {
            case TokenKind.Int:
                return new IntValue(long.Parse(t.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture),
                    t.Line, t.Column);
            case TokenKind.Float:
                return new FloatValue(double.Parse(t.Text, NumberStyles.Float, CultureInfo.InvariantCulture),
                    t.Line, t.Column);
            case TokenKind.Word:
                return new WordValue(t.Text, t.Line, t.Column);
            case TokenKind.Punct when t.Text == "[":
                // integers are kept in arrays while every item is one (shift tables), as values otherwise
                var ints = new IntItems();
                List<AttrValue>? items = null;
                SkipNewlines();
                if (!TryPunct("]"))
                {
                    do
                    {
                        SkipNewlines();
                        if (items is null && Peek() is { Kind: TokenKind.Int } it)
                        {
                            Take();
                            ints.Add(long.Parse(it.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture),
                                it.Line, it.Column);
                        }
                        else
                        {
                            items ??= [.. ints];
                            items.Add(ParseAttrValue());
                        }
                        SkipNewlines();
                    }
                    while (TryPunct(","));
                    ExpectPunct("]");
                }
                return new ListValue(items ?? (IReadOnlyList<AttrValue>)ints, t.Line, t.Column);
            default:
                throw Error(t, $"expected an attribute value, got '{Show(t)}'");
        }
    }

    private Token ParseRef(Dictionary<string, (TensorType Type, bool IsParam)> types)
    {
        var t = Take();
        if (t.Kind is not (TokenKind.Value or TokenKind.Param))
        {
            throw Error(t, $"expected %value or @param, got '{Show(t)}'");
        }
        if (!types.TryGetValue(t.Text, out var d)) throw Error(t, $"'{t.Text}' is not defined");
        if (d.IsParam != (t.Kind == TokenKind.Param))
        {
            throw Error(t, d.IsParam ? $"'{t.Text}' is a param: write @{t.Text}"
                : $"'{t.Text}' is not a param: write %{t.Text}");
        }
        return t;
    }

    private TensorType ParseType()
    {
        var t = Expect(TokenKind.Word, "an element type (f32, f64, f16, bf16, i32, i64)");
        if (!DTypes.TryParse(t.Text, out var d)) throw Error(t, $"unknown element type '{t.Text}'");
        ExpectPunct("[");
        var dims = new List<int>();
        if (!TryPunct("]"))
        {
            do
            {
                var n = Expect(TokenKind.Int, "a dimension");
                if (!int.TryParse(n.Text, NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                {
                    throw Error(n, $"dimension {n.Text} must be a non-negative 32-bit integer");
                }
                dims.Add(v);
            }
            while (TryPunct(","));
            ExpectPunct("]");
        }
        return new TensorType(d, new Shape(dims));
    }

    private void EndOfStatement()
    {
        var t = Peek();
        if (t.Kind is TokenKind.Newline or TokenKind.End) return;
        throw Error(t, $"expected the end of the line, got '{Show(t)}'");
    }

    private void SkipNewlines()
    {
        while (Peek().Kind == TokenKind.Newline) Take();
    }

    private Token Peek() => _cur;

    private Token Take()
    {
        var t = _cur;
        if (t.Kind != TokenKind.End) _cur = _lexer.Next();
        return t;
    }

    private Token Expect(TokenKind kind, string what)
    {
        var t = Peek();
        if (t.Kind != kind) throw Error(t, $"expected {what}, got '{Show(t)}'");
        return Take();
    }

    private void ExpectWord(string word)
    {
        var t = Peek();
        if (t.Kind != TokenKind.Word || t.Text != word) throw Error(t, $"expected '{word}', got '{Show(t)}'");
        Take();
    }

    private void ExpectPunct(string p)
    {
        if (!TryPunct(p)) throw Error(Peek(), $"expected '{p}', got '{Show(Peek())}'");
    }

    private bool TryPunct(string p)
    {
        var t = Peek();
        if (t.Kind != TokenKind.Punct || t.Text != p) return false;
        Take();
        return true;
    }

    private static string Show(Token t) => t.Kind switch
    {
        TokenKind.End => "end of file",
        TokenKind.Newline => "end of line",
        TokenKind.Value => "%" + t.Text,
        TokenKind.Param => "@" + t.Text,
        TokenKind.String => SwirPrinter.Quote(t.Text),
        _ => t.Text,
    };

    private SwirParseException Error(Token t, string what) => new(_file, t.Line, t.Column, what);
}
