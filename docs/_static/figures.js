// Every figure of an article opens at full size in a new tab when clicked:
// a figure shrunk to the text column keeps its detail one click away.
document.addEventListener("DOMContentLoaded", () => {
  for (const img of document.querySelectorAll("article.bd-article img")) {
    if (img.closest("a")) continue;
    const link = document.createElement("a");
    link.href = img.src;
    link.target = "_blank";
    link.rel = "noopener";
    link.title = "open the full-size figure";
    img.replaceWith(link);
    link.appendChild(img);
  }
});
